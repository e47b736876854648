<?php

declare(strict_types=1);

namespace Wxtoken\EasyWeChat;

use EasyWeChat\Kernel\Contracts\AccessToken;

/**
 * EasyWeChat 6 access token read from the file wxtoken keeps fresh.
 *
 * It implements only EasyWeChat\Kernel\Contracts\AccessToken and deliberately NOT
 * RefreshableAccessToken: EasyWeChat refreshes a token (on "42001 access_token expired" with
 * http.retry on) only when the object is refreshable, so with this class the SDK never asks WeChat
 * for a token itself - which would invalidate (legacy API) or race (stable API) the token every
 * other app reads from the same file.
 *
 *     $app = new \EasyWeChat\OfficialAccount\Application($config);   // MiniApp, Work alike
 *     $app->setAccessToken(new \Wxtoken\EasyWeChat\WxtokenAccessToken());
 *     // before the first $app->getClient(): the client captures the token object it is given.
 *
 * Needs WxtokenFile.php from this directory (PSR-4: map Wxtoken\EasyWeChat\ to it, or require both
 * files). The file is read on every getToken() (a few hundred bytes, replaced atomically), so
 * long-running workers pick up each refresh. Missing, unreadable, garbled or expired file:
 * RuntimeException.
 *
 * PHP 8.0+, like EasyWeChat 6. Tested in wxtoken's CI against a minimal stand-in of the interface,
 * not against EasyWeChat itself (it cannot be installed there); the interface was checked against
 * w7corp/easywechat 6.x, src/Kernel/Contracts/AccessToken.php (getToken(): string,
 * toQuery(): array).
 */
final class WxtokenAccessToken implements AccessToken
{
    public function __construct(
        private string $path = '/var/lib/wxtoken/access_token.json',
        private int $minRemaining = 0,
    ) {
    }

    public function getToken(): string
    {
        return WxtokenFile::read($this->path, 'access_token', $this->minRemaining);
    }

    /**
     * @return array<string,string>
     */
    public function toQuery(): array
    {
        return ['access_token' => $this->getToken()];
    }
}
