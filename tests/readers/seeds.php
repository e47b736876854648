<?php
// The read side of seeds 001 and 002 (../shared/seeds), with the one-path changes contrib/seeds.md
// gives, run against files wxtoken wrote. Prints the token when the seed's own check would use the
// file; exits 5 when the seed would decide to fetch from WeChat itself.
//   php seeds.php 001 /path/access_token.php
//   php seeds.php 002 /path/access_token.json

error_reporting(E_ALL);
list(, $seed, $file) = $argv;

if ($seed === '001') {
    // getAccessTokenFromCache($tokenFile) and the "未過期" test of seed 001.
    $tokenData = null;
    if (file_exists($file)) {
        $t = include($file);
        if ($t && is_array($t) && isset($t['access_token']) && isset($t['expires_at'])) {
            $tokenData = $t;
        }
    }
    if ($tokenData && $tokenData['expires_at'] > time()) {
        echo $tokenData['access_token'];
        exit(0);
    }
    exit(5);
}

if ($seed === '002') {
    // getAccessToken() of seed 002: json_decode() to an object, then the expire_time test.
    if (file_exists($file)) {
        $data = json_decode(file_get_contents($file));
    }
    if (!isset($data) || $data->expire_time < time()) {
        exit(5);
    }
    echo $data->access_token;
    exit(0);
}

fwrite(STDERR, "unknown seed $seed\n");
exit(4);
