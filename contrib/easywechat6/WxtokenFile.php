<?php

declare(strict_types=1);

namespace Wxtoken\EasyWeChat;

use RuntimeException;

/**
 * @internal Reads and checks one of wxtoken's JSON files for the adapters in this directory
 * (the same checks as contrib/php/wxtoken.php). Never calls WeChat.
 */
final class WxtokenFile
{
    public static function read(string $path, string $field, int $minRemaining): string
    {
        $raw = @file_get_contents($path);
        if ($raw === false) {
            if (!file_exists($path)) {
                throw new RuntimeException(sprintf(
                    'wxtoken: %s does not exist - is wxtoken installed and has it run? '
                    . '(`systemctl status wxtoken.timer`, `journalctl -u wxtoken`; is the path its --out?)',
                    $path
                ));
            }
            throw new RuntimeException(sprintf(
                'wxtoken: cannot read %s (%s) - the files are mode 0640: add the user PHP runs as '
                . 'to their group (see wxtoken --group)',
                $path,
                error_get_last()['message'] ?? 'file_get_contents() failed'
            ));
        }
        $data = json_decode($raw, true);
        if (!is_array($data)) {
            throw new RuntimeException(sprintf(
                'wxtoken: %s is not valid JSON (%s; %d bytes) - garbled, or not written by wxtoken',
                $path,
                json_last_error() === JSON_ERROR_NONE ? 'not an object' : json_last_error_msg(),
                strlen($raw)
            ));
        }
        $value = $data[$field] ?? null;
        if (!is_string($value) || !preg_match('~^[A-Za-z0-9\-_.\~+/=]{1,1024}\z~', $value)) {
            throw new RuntimeException(sprintf(
                'wxtoken: %s has no valid "%s" (garbled, or not written by wxtoken)',
                $path,
                $field
            ));
        }
        $expiresAt = $data['expires_at'] ?? null;
        if (!is_int($expiresAt)) {
            throw new RuntimeException(sprintf(
                'wxtoken: %s has no integer "expires_at" (garbled, or not written by wxtoken)',
                $path
            ));
        }
        $left = $expiresAt - time();
        if ($left <= 0) {
            throw new RuntimeException(sprintf(
                'wxtoken: the %s in %s expired %d s ago (at %s); wxtoken has not refreshed it - '
                . 'check `systemctl status wxtoken.timer` and `journalctl -u wxtoken`',
                $field,
                $path,
                -$left,
                date('Y-m-d H:i:s', $expiresAt)
            ));
        }
        if ($left < $minRemaining) {
            throw new RuntimeException(sprintf(
                'wxtoken: the %s in %s is valid for %d s more, fewer than the %d s asked for; '
                . 'wxtoken refreshes it before expiry - check `journalctl -u wxtoken`',
                $field,
                $path,
                $left,
                $minRemaining
            ));
        }
        return $value;
    }
}
