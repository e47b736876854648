<?php
// The read side of seed 003 (class_weixin's constructor in ../shared/seeds/003_*.txt): its MySQL,
// memcache and file stores, read and judged as the seed does, with only the connection settings
// changed (mysql_* removed in PHP 7, so mysqli with the same query). Prints the token when the
// seed would use it; exits 5 when it would fetch one from WeChat itself.
//   php seed003.php mysql [TYPE]   SEED_MYSQL="host port user database", SEED_MYSQL_PASSWORD
//   php seed003.php memcache       SEED_MEMCACHE="host port", SEED_APPID
//   php seed003.php file           reads access_token.json in the current directory, as the seed
//   php seed003.php loop STOPFILE  all three in turn until STOPFILE exists; prints
//                                  "reads N stale S" and each distinct token on a line
// SEED_NOW stands in for time() (the boundary tests).

error_reporting(E_ALL & ~E_DEPRECATED);   // php-memcache's own, on PHP 8.2

function seed_now() {
    $now = getenv('SEED_NOW');
    return $now === false ? time() : (int)$now;
}

// 1. Database form.
function seed_mysql($type = 'access_token') {
    list($host, $port, $user, $database) = explode(' ', getenv('SEED_MYSQL'));
    $password = getenv('SEED_MYSQL_PASSWORD');
    $con = mysqli_connect($host, $user, $password, $database, (int)$port);
    $result = mysqli_query($con, "SELECT * FROM `wx_token` WHERE `type` = '$type'");
    $access_token = null;
    $expires_time = null;
    while ($row = mysqli_fetch_array($result)) {
        $access_token = $row['value'];
        $expires_time = $row['expire'];
        break;
    }
    mysqli_close($con);
    if (seed_now() > ($expires_time + 3600)) {
        return null;
    }
    return $access_token;
}

// 2. Cache form (the local-environment branch).
function seed_memcache() {
    list($host, $port) = explode(' ', getenv('SEED_MEMCACHE'));
    $mem = new Memcache;
    $mem->connect($host, (int)$port) or exit(4);   // the seed: die("Could not connect")
    $access_token = $mem->get(getenv('SEED_APPID'));
    $mem->close();
    if (!isset($access_token) || empty($access_token)) {
        return null;
    }
    return $access_token;
}

// 3. Local write: the seed's relative path.
function seed_file() {
    $res = file_get_contents('access_token.json');
    $result = json_decode($res, true);
    $expires_time = $result["expires_time"];
    $access_token = $result["access_token"];
    if (seed_now() > ($expires_time + 3600)) {
        return null;
    }
    return $access_token;
}

$variant = $argv[1];
if ($variant === 'loop') {
    $reads = 0;
    $stale = 0;
    $seen = array();
    while (!file_exists($argv[2])) {
        foreach (array(seed_mysql(), seed_memcache(), seed_file()) as $t) {
            $reads++;
            if ($t === null) {
                $stale++;
            } else {
                $seen[$t] = true;
            }
        }
    }
    echo "reads $reads stale $stale\n";
    foreach (array_keys($seen) as $t) {
        echo "$t\n";
    }
    exit(0);
}
$token = $variant === 'mysql' ? seed_mysql(isset($argv[2]) ? $argv[2] : 'access_token')
    : ($variant === 'memcache' ? seed_memcache() : seed_file());
if ($token === null) {
    exit(5);
}
echo $token;
