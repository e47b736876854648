<?php
// Minimal stand-in for the EasyWeChat 6 contracts the adapters in contrib/easywechat6 implement
// (EasyWeChat itself cannot be installed in wxtoken's CI). Same namespace, names and method
// signatures as w7corp/easywechat 6.x src/Kernel/Contracts/{AccessToken,RefreshableAccessToken,
// JsApiTicket,RefreshableJsApiTicket}.php; nothing else.

declare(strict_types=1);

namespace EasyWeChat\Kernel\Contracts;

interface AccessToken
{
    public function getToken(): string;

    /** @return array<string,string> */
    public function toQuery(): array;
}

interface RefreshableAccessToken extends AccessToken
{
    public function refresh(): string;
}

interface JsApiTicket
{
    public function getTicket(): string;

    /** @return array<string,mixed> */
    public function configSignature(string $url, string $nonce, int $timestamp): array;
}

interface RefreshableJsApiTicket extends JsApiTicket
{
    public function refreshTicket(): string;
}
