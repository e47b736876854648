<?php
// Seed 001's token cache, step for step (curl fetch of cgi-bin/token, a cache file written as PHP
// source and read back with include, refreshed when past its expires_at less 60 s), as the baseline
// bench/run.sh times wxtoken against. Differences from the seed, all forced by the bench: the API
// base (the fake WeChat on 127.0.0.1, plain HTTP, so the seed's TLS settings play no part) and the
// cache path come from the environment, and a failed fetch exits 1 so a broken run cannot pass for
// a fast one. The demo account is hard-coded, as the seed hard-codes its own.
$APPID = 'wx1234567890abcdef';
$APPSECRET = 'demo-secret-not-a-real-one';
$API_BASE = getenv('SEED001_API_BASE') ?: 'https://api.weixin.qq.com';
$TOKEN_FILE = getenv('SEED001_TOKEN_FILE') ?: 'access_token.php';

function refreshAccessToken($base, $appid, $appsecret) {
    $url = "$base/cgi-bin/token?grant_type=client_credential&appid=$appid&secret=$appsecret";
    $ch = curl_init();
    curl_setopt($ch, CURLOPT_URL, $url);
    curl_setopt($ch, CURLOPT_RETURNTRANSFER, true);
    $response = curl_exec($ch);
    curl_close($ch);
    $data = json_decode($response, true);
    if (isset($data['access_token'])) {
        return $data['access_token'];
    } else {
        return false;
    }
}

function getAccessTokenFromCache($tokenFile) {
    if (file_exists($tokenFile)) {
        $tokenData = include($tokenFile);
        if ($tokenData && is_array($tokenData) && isset($tokenData['access_token']) && isset($tokenData['expires_at'])) {
            return $tokenData;
        }
    }
}

function updateAccessTokenCache($tokenFile, $access_token, $expires_in) {
    $expires_at = time() + $expires_in - 60;
    $tokenData = "<?php\nreturn array('access_token' => '$access_token', 'expires_at' => $expires_at);\n";
    file_put_contents($tokenFile, $tokenData);
}

$current_time = time();
$tokenData = getAccessTokenFromCache($TOKEN_FILE);
if ($tokenData && $tokenData['expires_at'] > $current_time) {
    $access_token = $tokenData['access_token'];
    echo "cached access_token: " . strlen($access_token) . " chars\n";
} else {
    $access_token = refreshAccessToken($API_BASE, $APPID, $APPSECRET);
    if ($access_token) {
        echo "new access_token: " . strlen($access_token) . " chars\n";
        updateAccessTokenCache($TOKEN_FILE, $access_token, 7200);
    } else {
        echo "access_token refresh failed\n";
        exit(1);
    }
}
