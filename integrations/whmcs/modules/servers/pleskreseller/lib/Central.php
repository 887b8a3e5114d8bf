<?php
/**
 * The central's admin API over HTTP(S) with the admin token as bearer. PHP streams only (no
 * curl, no Composer), so it runs on any PHP 7.4-8.3 that WHMCS runs on.
 */

namespace PleskReseller;

final class CentralError extends \RuntimeException
{
}

/** One answer: the HTTP status (0 when the central could not be reached), the JSON body. */
final class Answer
{
    /** @var int */
    public $status;
    /** @var array|null */
    public $json;
    /** @var string */
    public $body;
    /** @var string */
    public $url;

    public function __construct(int $status, ?array $json, string $body, string $url)
    {
        $this->status = $status;
        $this->json = $json;
        $this->body = $body;
        $this->url = $url;
    }

    public function ok(): bool
    {
        return $this->status >= 200 && $this->status < 300;
    }

    /**
     * The central has no such route (an older central): its handlers always answer JSON
     * {"error": ...}, an unknown route does not: a bare 404 on the admin socket, and on
     * admin_listen the fleet page's Basic-auth challenge (its fallback takes unknown paths).
     */
    public function noRoute(): bool
    {
        if ($this->json !== null) {
            // A central that answers unknown admin paths with its JSON 404.
            return $this->status === 404 && strpos((string) ($this->json['error'] ?? ''), 'no such admin route') !== false;
        }
        return $this->status === 404 || ($this->status === 401 && strpos($this->body, 'fleet page') !== false);
    }

    /** One readable sentence: the central's own error sentence when it gave one. */
    public function sentence(string $doing): string
    {
        if ($this->status === 0) {
            return "The central at {$this->url} cannot be reached while {$doing}: {$this->body}";
        }
        if (isset($this->json['error']) && is_string($this->json['error'])) {
            return ucfirst(rtrim($this->json['error'], '.')) . '.';
        }
        if ($this->noRoute()) {
            return "The central at {$this->url} has no such route while {$doing}; upgrade the central.";
        }
        $text = trim(substr($this->body, 0, 200));
        return "The central answered {$this->status} while {$doing}" . ($text === '' ? '.' : ": {$text}");
    }
}

final class Central
{
    /** @var string */
    private $adminUrl;
    /** @var string */
    private $token;
    /** @var string */
    private $agentsUrl;
    /** @var int */
    private $timeout;

    public function __construct(string $adminUrl, string $token, string $agentsUrl = '', int $timeout = 20)
    {
        $this->adminUrl = rtrim($adminUrl, '/');
        $this->token = $token;
        $this->agentsUrl = rtrim($agentsUrl, '/');
        $this->timeout = $timeout;
    }

    /**
     * From WHMCS's server fields: hostname (or IP), port, secure / http prefix, the password
     * (the admin token) and the access hash (the agents' URL, for /healthz; default: the same
     * host on port 8790).
     */
    public static function fromParams(array $params, int $timeout = 20): self
    {
        $host = trim((string) ($params['serverhostname'] ?? ''));
        if ($host === '') {
            $host = trim((string) ($params['serverip'] ?? ''));
        }
        $secure = !empty($params['serversecure']) && $params['serversecure'] !== 'off';
        $scheme = (string) ($params['serverhttpprefix'] ?? '');
        if ($scheme !== 'http' && $scheme !== 'https') {
            $scheme = $secure ? 'https' : 'http';
        }
        $port = (string) ($params['serverport'] ?? '');
        if ($port === '') {
            $port = '8791';
        }
        $admin = "{$scheme}://{$host}:{$port}";
        $agents = trim((string) ($params['serveraccesshash'] ?? ''));
        if ($agents === '') {
            $agents = "{$scheme}://{$host}:8790";
        }
        return new self($admin, (string) ($params['serverpassword'] ?? ''), $agents, $timeout);
    }

    public function adminUrl(): string
    {
        return $this->adminUrl;
    }

    public function agentsUrl(): string
    {
        return $this->agentsUrl;
    }

    /** An admin route: `$path` starts with /admin/v1. */
    public function admin(string $method, string $path, ?array $body = null): Answer
    {
        return $this->request($method, $this->adminUrl . $path, $body, true);
    }

    public function healthz(): Answer
    {
        return $this->request('GET', $this->agentsUrl . '/healthz', null, false);
    }

    private function request(string $method, string $url, ?array $body, bool $auth): Answer
    {
        $headers = ['Accept: application/json', 'User-Agent: pleskreseller-whmcs/1'];
        if ($auth) {
            $headers[] = 'Authorization: Bearer ' . $this->token;
        }
        $content = '';
        if ($body !== null) {
            $content = (string) json_encode($body, JSON_UNESCAPED_SLASHES);
            $headers[] = 'Content-Type: application/json';
        }
        $ctx = stream_context_create([
            'http' => [
                'method' => $method,
                'header' => implode("\r\n", $headers),
                'content' => $content,
                'timeout' => $this->timeout,
                // Keep 4xx/5xx bodies: the central's error sentence (and KA's refusal in it)
                // is what the admin must read, unlike FAILONERROR's "error 22".
                'ignore_errors' => true,
                'follow_location' => 0,
                'protocol_version' => 1.1,
            ],
            'ssl' => ['verify_peer' => true, 'verify_peer_name' => true],
        ]);
        $err = null;
        set_error_handler(function ($no, $str) use (&$err) {
            $err = $str;
            return true;
        });
        try {
            $raw = file_get_contents($url, false, $ctx);
            $lines = isset($http_response_header) ? $http_response_header : [];
        } finally {
            restore_error_handler();
        }
        $status = 0;
        foreach ($lines as $line) {
            // The last status line wins (there may be a 100 Continue before it).
            if (preg_match('#^HTTP/\S+\s+(\d{3})#', $line, $m)) {
                $status = (int) $m[1];
            }
        }
        if ($raw === false || $status === 0) {
            $why = $err === null ? 'no answer' : preg_replace('/^file_get_contents\([^)]*\): /', '', $err);
            return new Answer(0, null, (string) $why, $this->base($url));
        }
        $json = json_decode($raw, true);
        return new Answer($status, is_array($json) ? $json : null, $raw, $this->base($url));
    }

    /** The URL without its path, for sentences (never with a token: it is not in URLs). */
    private function base(string $url): string
    {
        $p = parse_url($url);
        if (!is_array($p) || !isset($p['host'])) {
            return $url;
        }
        return ($p['scheme'] ?? 'http') . '://' . $p['host'] . (isset($p['port']) ? ':' . $p['port'] : '');
    }
}
