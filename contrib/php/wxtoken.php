<?php
/**
 * Readers for the files wxtoken writes. Plain functions, PHP 7.0 or later, no dependencies
 * (the json extension, which is built in since PHP 8.0 and in every usual PHP 7 build).
 *
 *     require_once '/usr/share/wxtoken/php/wxtoken.php';   // or wherever you copied this file
 *     $token = wxtoken_access_token();                      // /var/lib/wxtoken/access_token.json
 *
 * These functions NEVER call WeChat. Fetching a token is wxtoken's job alone: an app that fetches
 * on its own invalidates (legacy API) or races (stable API) the token every other app uses. When
 * the file is missing, unreadable, garbled or expired they throw a RuntimeException that says
 * which and what to check; let it fail the request (and your monitoring see it) rather than
 * falling back to a fetch.
 *
 * Nothing is cached between calls: the file is small and replaced atomically (rename), so reading
 * it on every use is cheap and always sees one complete version, the previous or the new one.
 * Long-running workers (Swoole, RoadRunner, queue consumers) should call again for each job
 * instead of keeping the string.
 *
 * When WeChat rejects the token (errcode 40001, 42001 or 40014), tell wxtoken with
 * wxtoken_report_stale($token): it checks the token and replaces it within seconds.
 */

if (!function_exists('wxtoken_access_token')) {

    /**
     * The access token from wxtoken's JSON file (the contract).
     *
     * @param string $path         the .json file wxtoken writes (its --out)
     * @param int    $minRemaining throw unless the token is valid for at least this many more
     *                             seconds (0: any token that has not expired yet)
     * @return string
     * @throws RuntimeException
     */
    function wxtoken_access_token($path = '/var/lib/wxtoken/access_token.json', $minRemaining = 0)
    {
        $data = wxtoken_read_json($path);
        return wxtoken_checked_value($data, 'access_token', $path, $minRemaining);
    }

    /**
     * The whole record from wxtoken's JSON file (access_token, expires_at, expires_in, appid, ...),
     * after the same checks as wxtoken_access_token(), from a single read - for code that needs the
     * token and its expiry together, e.g. EasyWeChat 4/5's setToken($token, $lifetime).
     *
     * @param string $path
     * @param int    $minRemaining
     * @return array
     * @throws RuntimeException
     */
    function wxtoken_token_data($path = '/var/lib/wxtoken/access_token.json', $minRemaining = 0)
    {
        $data = wxtoken_read_json($path);
        wxtoken_checked_value($data, 'access_token', $path, $minRemaining);
        return $data;
    }

    /**
     * The access token from wxtoken's .php output (`--out .../access_token.php`), the array that
     * apps written like "include access_token.php" expect.
     *
     * OPcache: with opcache.validate_timestamps=0 PHP keeps serving the include it compiled first,
     * i.e. an old, eventually expired token, until opcache_reset() or a PHP restart; with the
     * default validate_timestamps=1 it may serve it for up to opcache.revalidate_freq seconds.
     * This function therefore invalidates the file's cached script before including it (pass
     * $invalidate = false to skip that). The JSON reader above has none of this: prefer it.
     *
     * @param string $path
     * @param int    $minRemaining
     * @param bool   $invalidate   call opcache_invalidate($path, true) first (when OPcache is loaded)
     * @return string
     * @throws RuntimeException
     */
    function wxtoken_access_token_from_php($path = '/var/lib/wxtoken/access_token.php', $minRemaining = 0, $invalidate = true)
    {
        if (!is_file($path)) {
            throw new RuntimeException(wxtoken_missing_message($path));
        }
        if (!is_readable($path)) {
            throw new RuntimeException(wxtoken_unreadable_message($path, 'permission denied'));
        }
        if ($invalidate && function_exists('opcache_invalidate')) {
            // Returns false when OPcache is disabled (php-cli by default) or restricted: harmless.
            @opcache_invalidate($path, true);
        }
        // A garbled file (an HTML error page, say) must not leak into the page being rendered.
        ob_start();
        try {
            $data = include $path;
        } catch (\Throwable $e) {
            ob_end_clean();
            // ParseError for a garbled file (PHP 7+).
            throw new RuntimeException(sprintf(
                'wxtoken: %s is not a valid wxtoken .php file (%s: %s)',
                $path,
                get_class($e),
                $e->getMessage()
            ), 0, $e);
        }
        ob_end_clean();
        if (!is_array($data)) {
            throw new RuntimeException(sprintf(
                'wxtoken: %s did not return an array (garbled, or not written by wxtoken)',
                $path
            ));
        }
        return wxtoken_checked_value($data, 'access_token', $path, $minRemaining);
    }

    /**
     * A JS-SDK ticket from the file wxtoken writes beside the token json with `--ticket TYPE`
     * (TYPE_ticket.json: jsapi_ticket.json, wx_card_ticket.json, agent_config_ticket.json).
     *
     * @param string $path
     * @param int    $minRemaining
     * @return string
     * @throws RuntimeException
     */
    function wxtoken_ticket($path = '/var/lib/wxtoken/jsapi_ticket.json', $minRemaining = 0)
    {
        $data = wxtoken_read_json($path);
        return wxtoken_checked_value($data, 'ticket', $path, $minRemaining);
    }

    /**
     * The signature wx.config() needs, from the jsapi ticket wxtoken keeps.
     * Returns appId, nonceStr, timestamp, url and signature (the keys wx.config() takes).
     *
     * @param string      $url       the page URL without the #fragment
     * @param string      $appId
     * @param string      $path      the jsapi ticket file
     * @param string|null $nonce     random when null
     * @param int|null    $timestamp time() when null
     * @return array
     * @throws RuntimeException
     */
    function wxtoken_jssdk_config($url, $appId, $path = '/var/lib/wxtoken/jsapi_ticket.json', $nonce = null, $timestamp = null)
    {
        $ticket = wxtoken_ticket($path);
        if ($nonce === null) {
            $nonce = bin2hex(random_bytes(8));
        }
        if ($timestamp === null) {
            $timestamp = time();
        }
        $hashPos = strpos($url, '#');
        if ($hashPos !== false) {
            $url = substr($url, 0, $hashPos);
        }
        return array(
            'appId' => $appId,
            'nonceStr' => $nonce,
            'timestamp' => (int) $timestamp,
            'url' => $url,
            'signature' => sha1(sprintf(
                'jsapi_ticket=%s&noncestr=%s&timestamp=%d&url=%s',
                $ticket,
                $nonce,
                $timestamp,
                $url
            )),
        );
    }

    /**
     * Tells wxtoken that WeChat rejected $token (errcode 40001, 42001 or 40014: another program
     * fetched a token for this account, or WeChat revoked it), so that it checks the token and
     * replaces it within seconds instead of at its expiry ("passive refresh"). Then read the token
     * again once: when it differs, retry the call with it; otherwise the next call will have it.
     *
     * It creates an empty file named hash('sha256', $token) in requests/ beside the token file,
     * which wxtoken creates (mode 01730: the files' group may add a request, not list or delete
     * them); systemd's wxtoken.path starts a run when one appears. No exec, no network, no
     * waiting. Reports are safe to repeat from every worker: wxtoken acts only when the digest
     * names the token its file holds now, asks WeChat before fetching, and rate-limits.
     *
     * @param string $token the token WeChat rejected, as it was sent
     * @param string $path  the token file it came from (wxtoken's --out)
     * @return bool true when the report is filed (or one for this token already was); false when
     *              it cannot be: no requests/ directory (wxtoken has not run yet, or is too old to
     *              take reports) or no permission (this user is not in the files' group). It never
     *              throws: the API call has failed already, and the caller handles that.
     */
    function wxtoken_report_stale($token, $path = '/var/lib/wxtoken/access_token.json')
    {
        if (!is_string($token) || $token === '') {
            return false;
        }
        $request = dirname($path) . '/requests/' . hash('sha256', $token);
        // Twice: wxtoken may consume another worker's report of the same token between our failed
        // create ("exists") and the check, and then the second create succeeds.
        for ($try = 0; $try < 2; $try++) {
            // 'x' is O_CREAT|O_EXCL: never opens an existing file, nor follows a planted symlink.
            $f = @fopen($request, 'x');
            if ($f !== false) {
                fclose($f);
                return true;
            }
            if (file_exists($request)) {
                return true;
            }
        }
        return false;
    }

    /**
     * The decoded JSON file as an array (all fields), after checking it can be read and parsed.
     * Use wxtoken_access_token() unless you need e.g. `expires_at`.
     *
     * @param string $path
     * @return array
     * @throws RuntimeException
     */
    function wxtoken_read_json($path)
    {
        $raw = @file_get_contents($path);
        if ($raw === false) {
            if (!file_exists($path)) {
                throw new RuntimeException(wxtoken_missing_message($path));
            }
            $err = error_get_last();
            throw new RuntimeException(wxtoken_unreadable_message(
                $path,
                $err ? $err['message'] : 'file_get_contents() failed'
            ));
        }
        if (!function_exists('json_decode')) {
            throw new RuntimeException('wxtoken: this PHP lacks the json extension (install php-json)');
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
        return $data;
    }

    /**
     * @internal Checks $data[$field] and $data['expires_at']; returns the value.
     */
    function wxtoken_checked_value(array $data, $field, $path, $minRemaining)
    {
        $value = isset($data[$field]) ? $data[$field] : null;
        if (!is_string($value) || !preg_match('~^[A-Za-z0-9\-_.\~+/=]{1,1024}\z~', $value)) {
            throw new RuntimeException(sprintf(
                'wxtoken: %s has no valid "%s" (garbled, or not written by wxtoken)',
                $path,
                $field
            ));
        }
        $expiresAt = isset($data['expires_at']) ? $data['expires_at'] : null;
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
        if ($left < (int) $minRemaining) {
            throw new RuntimeException(sprintf(
                'wxtoken: the %s in %s is valid for %d s more, fewer than the %d s asked for; '
                . 'wxtoken refreshes it before expiry - check `journalctl -u wxtoken`',
                $field,
                $path,
                $left,
                (int) $minRemaining
            ));
        }
        return $value;
    }

    /** @internal */
    function wxtoken_missing_message($path)
    {
        return sprintf(
            'wxtoken: %s does not exist - is wxtoken installed and has it run? '
            . '(`systemctl status wxtoken.timer`, `journalctl -u wxtoken`; is the path its --out?)',
            $path
        );
    }

    /** @internal */
    function wxtoken_unreadable_message($path, $why)
    {
        return sprintf(
            'wxtoken: cannot read %s (%s) - the files are mode 0640: add the user PHP runs as '
            . 'to their group (see wxtoken --group)',
            $path,
            $why
        );
    }
}
