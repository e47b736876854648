<?php

declare(strict_types=1);

namespace Wxtoken\EasyWeChat;

use EasyWeChat\Kernel\Contracts\JsApiTicket;

/**
 * EasyWeChat 6 JS-SDK ticket read from the jsapi_ticket.json wxtoken writes with `--ticket jsapi`.
 *
 * Implements EasyWeChat\Kernel\Contracts\JsApiTicket and NOT RefreshableJsApiTicket, so the SDK
 * never fetches a ticket itself. That interface exists since EasyWeChat 6.11.4 (OfficialAccount's
 * setTicket() accepts it from then on; Work's setTicket() takes its own class and cannot use this).
 *
 *     $app->setTicket(new \Wxtoken\EasyWeChat\WxtokenJsApiTicket($app->getAccount()->getAppId()));
 *     $config = $app->getUtils()->buildJsSdkConfig($url, ['updateAppMessageShareData']);
 *
 * Needs WxtokenFile.php from this directory. Tested against a stand-in of the interface only.
 */
final class WxtokenJsApiTicket implements JsApiTicket
{
    public function __construct(
        private string $appId,
        private string $path = '/var/lib/wxtoken/jsapi_ticket.json',
        private int $minRemaining = 0,
    ) {
    }

    public function getTicket(): string
    {
        return WxtokenFile::read($this->path, 'ticket', $this->minRemaining);
    }

    /**
     * The fields wx.config() takes besides jsApiList: url, nonceStr, timestamp, appId, signature.
     *
     * @return array<string,mixed>
     */
    public function configSignature(string $url, string $nonce, int $timestamp): array
    {
        return [
            'url' => $url,
            'nonceStr' => $nonce,
            'timestamp' => $timestamp,
            'appId' => $this->appId,
            'signature' => sha1(sprintf(
                'jsapi_ticket=%s&noncestr=%s&timestamp=%d&url=%s',
                $this->getTicket(),
                $nonce,
                $timestamp,
                $url
            )),
        ];
    }
}
