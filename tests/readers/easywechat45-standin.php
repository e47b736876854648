<?php
// Minimal stand-in for the EasyWeChat 4.x/5.x classes that contrib/easywechat4-5.md's
// WxtokenEasyWeChatToken extends (EasyWeChat cannot be installed in wxtoken's CI). Same names and
// method signatures as w7corp/easywechat 4.x/5.x src/Kernel/Contracts/AccessTokenInterface.php,
// src/Kernel/AccessToken.php and src/OfficialAccount/Auth/AccessToken.php (applyToRequest left out:
// it needs PSR-7). Where the real SDK would fetch a token from WeChat, this one throws a
// LogicException, which tests/readers.rs reports as a bug.

namespace EasyWeChat\Kernel\Contracts {
    interface AccessTokenInterface
    {
        public function getToken(): array;

        public function refresh(): self;
    }
}

namespace EasyWeChat\Kernel {
    use EasyWeChat\Kernel\Contracts\AccessTokenInterface;

    abstract class AccessToken implements AccessTokenInterface
    {
        protected $app;

        public function __construct($app)
        {
            $this->app = $app;
        }

        public function getToken(bool $refresh = false): array
        {
            throw new \LogicException('stand-in: EasyWeChat would fetch a token from WeChat here');
        }

        public function setToken(string $token, int $lifetime = 7200): AccessTokenInterface
        {
            return $this;
        }

        public function refresh(): AccessTokenInterface
        {
            $this->getToken(true);

            return $this;
        }

        public function getRefreshedToken(): array
        {
            return $this->getToken(true);
        }
    }
}

namespace EasyWeChat\OfficialAccount\Auth {
    class AccessToken extends \EasyWeChat\Kernel\AccessToken
    {
    }
}
