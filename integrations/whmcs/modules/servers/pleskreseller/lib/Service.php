<?php
/**
 * One WHMCS service as the module sees it: its custom fields (read from $params, written
 * through WHMCS's serviceProperties, which creates a missing field as admin-only), the
 * operation ids it sends, and the links callback.php follows from a central object back to
 * the service.
 */

namespace PleskReseller;

final class Service
{
    public const F_HOST = 'Host id';
    public const F_PARENT_KN = 'Plesk key number';
    public const F_BUY_TOKEN = 'Buy Now token';
    public const F_ORDER = 'Order id';
    public const F_LICENSE = 'License id';
    public const F_KN = 'License key number';
    public const F_ENROLL = 'Enroll key';
    public const F_STATE = 'Central state';
    public const F_LAST_EVENT = 'Last event';
    public const F_LAST_OP = 'Last operation';

    /** @var array */
    private $params;
    /** @var array<string,string> */
    private $fields;

    public function __construct(array $params)
    {
        $this->params = $params;
        $this->fields = [];
        foreach ((array) ($params['customfields'] ?? []) as $k => $v) {
            $this->fields[(string) $k] = trim((string) $v);
        }
    }

    public function id(): int
    {
        return (int) ($this->params['serviceid'] ?? 0);
    }

    public function get(string $field): string
    {
        if (isset($this->fields[$field]) && $this->fields[$field] !== '') {
            return $this->fields[$field];
        }
        $props = $this->props();
        if ($props !== null) {
            $v = trim((string) $props->get($field));
            if ($v !== '') {
                return $this->fields[$field] = $v;
            }
        }
        return '';
    }

    /** @param array<string,string> $values */
    public function save(array $values): void
    {
        $props = $this->props();
        if ($props === null) {
            throw new \RuntimeException("Service {$this->id()} has no serviceProperties to save " . implode(', ', array_keys($values)) . ' in.');
        }
        $props->save($values);
        foreach ($values as $k => $v) {
            $this->fields[$k] = (string) $v;
        }
    }

    private function props()
    {
        $m = $this->params['model'] ?? null;
        return is_object($m) && isset($m->serviceProperties) ? $m->serviceProperties : null;
    }

    /**
     * The operation id for `$action` (e.g. "suspend", "change:ITEMS"): the service id, the verb
     * and a generation. A repeat of the last action (WHMCS retrying, an admin clicking twice)
     * gets the same id, so the central acts once; any other action in between starts a new
     * generation. The generation is saved before the call, so a call whose answer was lost is
     * retried under the same id.
     */
    public function opId(string $action): string
    {
        $last = $this->get(self::F_LAST_OP);
        $gen = 0;
        $lastAction = '';
        if (preg_match('/^(.*)#(\d+)$/', $last, $m)) {
            $lastAction = $m[1];
            $gen = (int) $m[2];
        }
        if ($lastAction !== $action) {
            $gen++;
            $this->save([self::F_LAST_OP => "{$action}#{$gen}"]);
        }
        $verb = explode(':', $action, 2)[0];
        return 'whmcs-' . $this->id() . '-' . $verb . '-' . $gen;
    }

    /** The service id in an order or operation id this module made, else 0. */
    public static function serviceOf(string $opId): int
    {
        return preg_match('/^whmcs-(\d+)-[a-z]+-\d+$/', $opId, $m) ? (int) $m[1] : 0;
    }
}

/** Files in the state dir: a license id or host id → the service id that owns it. */
final class Links
{
    /** @var string */
    private $dir;

    public function __construct(string $stateDir)
    {
        $this->dir = rtrim($stateDir, '/') . '/links';
    }

    public function put(string $kind, string $key, int $serviceId): void
    {
        if (!is_dir($this->dir)) {
            @mkdir($this->dir, 0700, true);
        }
        @file_put_contents($this->path($kind, $key), (string) $serviceId);
    }

    public function get(string $kind, string $key): int
    {
        $v = @file_get_contents($this->path($kind, $key));
        return $v === false ? 0 : (int) $v;
    }

    private function path(string $kind, string $key): string
    {
        return $this->dir . '/' . $kind . '-' . hash('sha256', $key);
    }
}
