<?php
// Runs the report side of contrib/php/wxtoken.php for tests/readers.rs.
//
//   php report.php helper TOKEN TOKEN_FILE
//       wxtoken_report_stale(TOKEN, TOKEN_FILE); prints true or false.
//   php report.php snippet CODE_FILE TOKEN_FILE [NEWER_FILE]
//       runs CODE_FILE (the php-report block of contrib/README.md, its paths pointed at
//       TOKEN_FILE) with a wechat_api() that rejects the token TOKEN_FILE held at the start with
//       errcode 40001 and accepts any other. With NEWER_FILE, the rejection also renames
//       NEWER_FILE over TOKEN_FILE: another worker's report was served meanwhile. Prints each token
//       wechat_api() got, one a line, then "res=" and the final result as JSON.

require __DIR__ . '/../../contrib/php/wxtoken.php';

if ($argv[1] === 'helper') {
    echo var_export(wxtoken_report_stale($argv[2], $argv[3]), true);
    exit(0);
}

$code = file_get_contents($argv[2]);
$FILE = $argv[3];
$NEWER = isset($argv[4]) ? $argv[4] : null;
$first = wxtoken_access_token($FILE);
$calls = array();

function wechat_api($token)
{
    global $first, $calls, $FILE, $NEWER;
    $calls[] = $token;
    if ($token === $first) {
        if ($NEWER !== null) {
            rename($NEWER, $FILE);
            $NEWER = null;
        }
        return array('errcode' => 40001, 'errmsg' => 'invalid credential, access_token is invalid or not latest');
    }
    return array('openid' => 'o6_bmjrPTlm6_2sgVt7hMZOPfL2M');
}

eval($code);
foreach ($calls as $c) {
    echo $c, "\n";
}
echo 'res=', json_encode($res), "\n";
