<?php
/**
 * The webhook endpoint's logic, apart from PHP's request globals so it can be tested: verify
 * the Standard Webhooks signature, apply each webhook-id once, update the service through
 * WHMCS's local API (status, custom fields, a log line).
 */

namespace PleskReseller;

require_once __DIR__ . '/Webhook.php';
require_once __DIR__ . '/Service.php';

final class Callback
{
    /** What each event makes of the service's WHMCS status (absent: status unchanged). */
    private const STATUS = [
        'order.done' => 'Active',
        'order.failed' => 'Pending',
        'license.suspended' => 'Suspended',
        'license.resumed' => 'Active',
        'license.terminated' => 'Terminated',
    ];

    /** @var array */
    private $config;

    public function __construct(array $config)
    {
        $this->config = $config;
    }

    /** @return array{0:int,1:string} the HTTP status and a one-line answer */
    public function handle(array $headers, string $body, int $now): array
    {
        if ($this->config['webhook_secret'] === '') {
            return [500, 'No webhook secret is configured in ' . ($this->config['file'] ?? 'config.php') . '.'];
        }
        try {
            Webhook::verify($this->config['webhook_secret'], $headers, $body, $now);
        } catch (WebhookError $e) {
            return [401, $e->getMessage()];
        }
        $event = json_decode($body, true);
        if (!is_array($event) || !isset($event['type']) || !is_string($event['type'])) {
            return [400, 'The webhook body is not an event: {"id", "type", "timestamp", "data"}.'];
        }
        $h = array_change_key_case($headers, CASE_LOWER);
        $id = (string) $h['webhook-id'];
        $seen = new SeenIds($this->config['state_dir'] . '/seen');
        if (!$seen->claim($id)) {
            return [200, "Webhook {$id} was processed already; ignored."];
        }
        try {
            $msg = $this->apply($event);
        } catch (\Throwable $e) {
            // Not applied: give the id back so the central's retry is.
            $seen->release($id);
            return [500, "Webhook {$id} ({$event['type']}) was not applied: " . $e->getMessage()];
        }
        return [200, $msg];
    }

    private function apply(array $event): string
    {
        $type = $event['type'];
        $data = is_array($event['data'] ?? null) ? $event['data'] : [];
        $links = new Links($this->config['state_dir']);
        $sid = 0;
        if (strpos($type, 'order.') === 0) {
            $sid = Service::serviceOf((string) ($data['order_id'] ?? $data['order'] ?? $data['id'] ?? ''));
        } elseif (strpos($type, 'license.') === 0) {
            $license = (string) ($data['license_id'] ?? $data['license'] ?? $data['id'] ?? '');
            $sid = $links->get('license', $license);
            if ($sid === 0) {
                $sid = Service::serviceOf((string) ($data['order'] ?? $data['order_id'] ?? $data['op_id'] ?? ''));
            }
        } elseif ($type === 'host.enrolled') {
            $host = (string) ($data['host_id'] ?? $data['host'] ?? $data['id'] ?? '');
            $sid = $links->get('host', $host);
            if ($sid !== 0) {
                // The server enrolled: place the order it waited for (same order id).
                $r = localAPI('ModuleCreate', ['serviceid' => $sid]);
                $this->log($sid, "host {$host} enrolled; Create run again: " . ($r['result'] ?? '?'));
                return "Service {$sid}: host {$host} enrolled, order placed.";
            }
        }
        if ($sid === 0) {
            return "Event {$type} concerns no service of this store; ignored.";
        }
        $state = (string) ($data['state'] ?? '');
        $fields = [
            Service::F_LAST_EVENT => trim($type . ' ' . ($event['timestamp'] ?? '')),
            Service::F_STATE => trim(($state !== '' ? $state : $type) . (isset($data['error']) ? ': ' . $data['error'] : '')),
        ];
        if (!empty($data['key_number']) || !empty($data['ka_key_number'])) {
            $fields[Service::F_KN] = (string) ($data['key_number'] ?? $data['ka_key_number']);
        }
        if (!empty($data['ka_key_id']) || !empty($data['license_id'])) {
            $license = (string) ($data['ka_key_id'] ?? $data['license_id']);
            $fields[Service::F_LICENSE] = $license;
            $links->put('license', $license, $sid);
        }
        $update = ['serviceid' => $sid, 'customfields' => base64_encode(serialize($this->fieldIds($sid, $fields)))];
        if (isset(self::STATUS[$type])) {
            $update['status'] = self::STATUS[$type];
        }
        $r = localAPI('UpdateClientProduct', $update);
        if (($r['result'] ?? '') !== 'success') {
            throw new \RuntimeException('UpdateClientProduct: ' . ($r['message'] ?? 'failed'));
        }
        $this->log($sid, "{$type}" . (isset($update['status']) ? ", status {$update['status']}" : '') . ($state !== '' ? ", {$state}" : ''));
        return "Service {$sid} updated from {$type}.";
    }

    /**
     * UpdateClientProduct takes custom fields by id: read the service's to map names to ids.
     * @param array<string,string> $byName
     * @return array<int,string>
     */
    private function fieldIds(int $sid, array $byName): array
    {
        $r = localAPI('GetClientsProducts', ['serviceid' => $sid]);
        if (($r['result'] ?? '') !== 'success') {
            throw new \RuntimeException("service {$sid} cannot be read: " . ($r['message'] ?? 'GetClientsProducts failed'));
        }
        $out = [];
        foreach ($r['products']['product'][0]['customfields']['customfield'] ?? [] as $f) {
            if (isset($byName[$f['name']])) {
                $out[(int) $f['id']] = $byName[$f['name']];
            }
        }
        return $out;
    }

    private function log(int $sid, string $line): void
    {
        if (function_exists('logActivity')) {
            logActivity("Plesk Reseller Central: service {$sid}: {$line}");
        }
    }
}
