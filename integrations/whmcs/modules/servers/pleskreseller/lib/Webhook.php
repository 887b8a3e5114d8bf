<?php
/**
 * Standard Webhooks verification (https://www.standardwebhooks.com): HMAC-SHA256 over
 * "id.timestamp.body" with the secret's bytes, base64, sent as "v1,<sig>" (several, space
 * separated, during a key rotation); the timestamp within 5 minutes of now.
 */

namespace PleskReseller;

final class WebhookError extends \RuntimeException
{
}

final class Webhook
{
    public const TOLERANCE = 300;

    /** The secret's bytes: "whsec_" then base64 (the prefix is optional, as in the spec's libraries). */
    public static function secretBytes(string $secret): string
    {
        $secret = trim($secret);
        if (strpos($secret, 'whsec_') === 0) {
            $secret = substr($secret, 6);
        }
        $bytes = base64_decode($secret, true);
        if ($bytes === false || $bytes === '') {
            throw new WebhookError('The webhook secret is not whsec_ followed by base64.');
        }
        return $bytes;
    }

    public static function sign(string $secret, string $id, int $timestamp, string $body): string
    {
        $mac = hash_hmac('sha256', "{$id}.{$timestamp}.{$body}", self::secretBytes($secret), true);
        return 'v1,' . base64_encode($mac);
    }

    /**
     * Throws WebhookError with one sentence when the request is not from the central.
     * `$headers` keys are compared case-insensitively.
     */
    public static function verify(string $secret, array $headers, string $body, int $now): void
    {
        $h = array_change_key_case($headers, CASE_LOWER);
        $id = (string) ($h['webhook-id'] ?? '');
        $ts = (string) ($h['webhook-timestamp'] ?? '');
        $sigs = (string) ($h['webhook-signature'] ?? '');
        if ($id === '' || $ts === '' || $sigs === '') {
            throw new WebhookError('The request lacks webhook-id, webhook-timestamp or webhook-signature.');
        }
        if (!preg_match('/^\d{1,12}$/', $ts)) {
            throw new WebhookError("The webhook-timestamp {$ts} is not unix seconds.");
        }
        if (abs($now - (int) $ts) > self::TOLERANCE) {
            throw new WebhookError("The webhook-timestamp {$ts} is more than 5 minutes from now ({$now}).");
        }
        $expected = substr(self::sign($secret, $id, (int) $ts, $body), 3);
        foreach (preg_split('/ +/', trim($sigs)) as $sig) {
            $parts = explode(',', $sig, 2);
            if (count($parts) === 2 && $parts[0] === 'v1' && hash_equals($expected, $parts[1])) {
                return;
            }
        }
        throw new WebhookError("No signature of webhook {$id} matches the webhook secret.");
    }
}

/**
 * Webhook ids already processed, one file each in a directory: creating a file with mode "x"
 * is atomic, so two deliveries of one id at once apply it once. Files older than a week are
 * pruned (the central stops retrying after 3 days).
 */
final class SeenIds
{
    /** @var string */
    private $dir;

    public function __construct(string $dir)
    {
        $this->dir = rtrim($dir, '/');
    }

    private function path(string $id): string
    {
        return $this->dir . '/' . hash('sha256', $id);
    }

    /** True when this call claimed the id; false when it was processed (or claimed) already. */
    public function claim(string $id): bool
    {
        if (!is_dir($this->dir) && !@mkdir($this->dir, 0700, true) && !is_dir($this->dir)) {
            throw new WebhookError("Cannot create the webhook id store {$this->dir}.");
        }
        $f = @fopen($this->path($id), 'x');
        if ($f === false) {
            if (file_exists($this->path($id))) {
                return false;
            }
            throw new WebhookError("Cannot write to the webhook id store {$this->dir}.");
        }
        fwrite($f, $id . "\n");
        fclose($f);
        if (random_int(0, 99) === 0) {
            $this->prune(time() - 7 * 86400);
        }
        return true;
    }

    /** Gives a claim back when processing failed, so the central's retry is applied. */
    public function release(string $id): void
    {
        @unlink($this->path($id));
    }

    public function prune(int $before): void
    {
        foreach (glob($this->dir . '/*') ?: [] as $p) {
            if (@filemtime($p) < $before) {
                @unlink($p);
            }
        }
    }
}
