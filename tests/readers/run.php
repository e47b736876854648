<?php
// Runs one of the PHP readers in contrib/ for tests/readers.rs.
//   php run.php READER PATH [MIN_REMAINING]
// Prints the value alone and exits 0; a RuntimeException (the readers' documented failure) is
// printed to stderr with exit status 3. Anything else (TypeError, fatal error) exits otherwise,
// and the test treats that as a bug, not as a clear failure.

$contrib = __DIR__ . '/../../contrib';
$reader = $argv[1];
$path = $argv[2];
$min = isset($argv[3]) ? (int) $argv[3] : 0;

function wxtoken_test_bug($msg)
{
    fwrite(STDERR, "BUG: $msg\n");
    exit(4);
}

if (strpos($reader, 'ew45-') === 0) {
    // The class from contrib/easywechat4-5.md, as printed there, with the file path swapped.
    require __DIR__ . '/easywechat45-standin.php';
    require $contrib . '/php/wxtoken.php';
    $md = file_get_contents($contrib . '/easywechat4-5.md');
    $at = strpos($md, 'runs this block: ew45-class -->');
    if ($at === false || !preg_match('/```php\n(.*?)```/s', $md, $m, 0, $at)) {
        wxtoken_test_bug('contrib/easywechat4-5.md lacks the ew45-class block');
    }
    $code = str_replace("'/var/lib/wxtoken/access_token.json'", var_export($path, true), $m[1], $swapped);
    if ($swapped !== 1) {
        wxtoken_test_bug('the ew45-class block does not name /var/lib/wxtoken/access_token.json once');
    }
    eval($code);
} elseif (strpos($reader, 'ew6-') === 0) {
    require __DIR__ . '/easywechat6-contracts.php';
    require $contrib . '/easywechat6/WxtokenFile.php';
    require $contrib . '/easywechat6/WxtokenAccessToken.php';
    require $contrib . '/easywechat6/WxtokenJsApiTicket.php';
} else {
    require $contrib . '/php/wxtoken.php';
}

try {
    switch ($reader) {
        case 'php-json':
            $value = wxtoken_access_token($path, $min);
            break;
        case 'php-include':
            $value = wxtoken_access_token_from_php($path, $min);
            break;
        case 'php-ticket':
            $value = wxtoken_ticket($path, $min);
            break;
        case 'ew6-token':
            $t = new \Wxtoken\EasyWeChat\WxtokenAccessToken($path, $min);
            // What Application::setAccessToken() and AccessTokenAwareClient accept ...
            if (!$t instanceof \EasyWeChat\Kernel\Contracts\AccessToken) {
                wxtoken_test_bug('not an EasyWeChat\Kernel\Contracts\AccessToken');
            }
            // ... and what AccessTokenExpiredRetryStrategy would refresh (i.e. fetch): must not be.
            if ($t instanceof \EasyWeChat\Kernel\Contracts\RefreshableAccessToken || method_exists($t, 'refresh')) {
                wxtoken_test_bug('the adapter is refreshable: the SDK could fetch a token itself');
            }
            $value = $t->getToken();
            if ($t->toQuery() !== array('access_token' => $value)) {
                wxtoken_test_bug('toQuery() = ' . var_export($t->toQuery(), true));
            }
            break;
        case 'ew45-token':
            // $min is not a parameter of the class: the test passes 0 only.
            $t = new WxtokenEasyWeChatToken(null);
            if (!$t instanceof \EasyWeChat\Kernel\Contracts\AccessTokenInterface) {
                wxtoken_test_bug('not an AccessTokenInterface');
            }
            $value = $t->getToken()['access_token'];
            // The SDK's refresh paths: every one must end at the file, none at WeChat.
            try {
                $again = $t->getToken(true)['access_token'];
                $t->refresh();
                $t->getRefreshedToken();
            } catch (\LogicException $e) {
                wxtoken_test_bug($e->getMessage());
            }
            if ($again !== $value) {
                wxtoken_test_bug('getToken(true) gave another token');
            }
            $lifetime = $t->getToken()['expires_in'];
            if (!is_int($lifetime) || $lifetime < 1 || $lifetime > 7200) {
                wxtoken_test_bug("expires_in $lifetime");
            }
            break;
        case 'ew6-ticket':
            $t = new \Wxtoken\EasyWeChat\WxtokenJsApiTicket('wx1234567890abcdef', $path, $min);
            if (!$t instanceof \EasyWeChat\Kernel\Contracts\JsApiTicket) {
                wxtoken_test_bug('not an EasyWeChat\Kernel\Contracts\JsApiTicket');
            }
            if ($t instanceof \EasyWeChat\Kernel\Contracts\RefreshableJsApiTicket || method_exists($t, 'refreshTicket')) {
                wxtoken_test_bug('the ticket adapter is refreshable: the SDK could fetch a ticket itself');
            }
            $value = $t->getTicket();
            break;
        case 'php-jssdk':
            // Signature check with WeChat's published example (JS-SDK docs, appendix 1).
            $c = wxtoken_jssdk_config('http://mp.weixin.qq.com?params=value#frag', 'wxappid', $path, 'Wm3WZYTPz0wzccnW', 1414587457);
            $value = $c['signature'] . ' ' . $c['url'] . ' ' . $c['timestamp'] . ' ' . $c['nonceStr'] . ' ' . $c['appId'];
            break;
        case 'ew6-jssdk':
            $t = new \Wxtoken\EasyWeChat\WxtokenJsApiTicket('wxappid', $path);
            $c = $t->configSignature('http://mp.weixin.qq.com?params=value', 'Wm3WZYTPz0wzccnW', 1414587457);
            $value = $c['signature'] . ' ' . $c['url'] . ' ' . $c['timestamp'] . ' ' . $c['nonceStr'] . ' ' . $c['appId'];
            break;
        default:
            wxtoken_test_bug("unknown reader $reader");
    }
} catch (RuntimeException $e) {
    fwrite(STDERR, $e->getMessage() . "\n");
    exit(3);
}
echo $value;
