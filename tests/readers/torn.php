<?php
// Torn-read probe for tests/readers.rs: reads FILE in a tight loop while wxtoken rewrites it.
//   php torn.php json|php FILE STOP_FILE READY_FILE
// json: json_decode(file_get_contents(FILE)), the way seed 002 reads access_token.json;
// php:  include FILE, the way seed 001 reads access_token.php. Run with opcache.enable_cli=0
//       (php-cli's default), so every include really reads and compiles the file.
// A read fails unless it yields a complete record: access_token in wxtoken's charset, integer
// expires_at, expire_time equal to it, appid and api present. Stops when STOP_FILE exists (checked
// every 64 reads) or after 120 s; prints "MODE reads=N failed=N changes=N", where changes counts
// the reads that saw a different token than the read before.

error_reporting(E_ALL);
list(, $mode, $file, $stop, $ready) = $argv;
$reads = 0;
$failed = 0;
$changes = 0;
$last = null;
$firstFailure = null;
$deadline = microtime(true) + 120;

while (true) {
    if (($reads & 63) === 0 && (file_exists($stop) || microtime(true) > $deadline)) {
        break;
    }
    $reads++;
    if ($mode === 'json') {
        $raw = @file_get_contents($file);
        $d = $raw === false ? false : json_decode($raw, true);
    } else {
        $raw = null;
        $d = @include $file;
    }
    $ok = is_array($d)
        && isset($d['access_token'], $d['expires_at'], $d['expire_time'], $d['appid'], $d['api'])
        && is_string($d['access_token'])
        && preg_match('~^[A-Za-z0-9\-_.\~+/=]{1,1024}\z~', $d['access_token'])
        && is_int($d['expires_at'])
        && $d['expire_time'] === $d['expires_at'];
    if (!$ok) {
        $failed++;
        if ($firstFailure === null) {
            $firstFailure = var_export($raw === null ? $d : $raw, true);
        }
        continue;
    }
    if ($d['access_token'] !== $last) {
        if ($last !== null) {
            $changes++;
        }
        $last = $d['access_token'];
    }
    if ($reads === 1) {
        touch($ready);
    }
}
echo "$mode reads=$reads failed=$failed changes=$changes\n";
if ($firstFailure !== null) {
    fwrite(STDERR, "first failed read: " . substr($firstFailure, 0, 400) . "\n");
}
