<?php
/**
 * A tiny stand-in for WHMCS: the functions the module and callback.php call (localAPI,
 * logModuleCall, logActivity, add_hook) and a service whose serviceProperties write to the
 * same custom fields GetClientsProducts reads. Nothing else of WHMCS is faked.
 */

define('WHMCS', true);
if (!defined('PLESKRESELLER_CONFIG_FILE')) {
    define('PLESKRESELLER_CONFIG_FILE', getenv('PLESKRESELLER_CONFIG') ?: '/nonexistent');
}

final class FakeWhmcs
{
    /** @var array<int,array<string,string>> service id => custom field name => value */
    public static $fields = [];
    /** @var array<int,string> */
    public static $status = [];
    /** @var array[] every localAPI call */
    public static $calls = [];
    /** @var string[] */
    public static $log = [];
    /** @var array<string,callable[]> */
    public static $hooks = [];
    /** @var array<int,int> service id => product id */
    public static $pid = [];
    /** @var array<int,array<string,int>> product id => custom field name => id */
    public static $productFields = [];
    /** @var bool UpdateClientProduct fails (WHMCS's database down) */
    public static $failUpdates = false;

    public static function reset(): void
    {
        self::$fields = self::$status = self::$calls = self::$log = self::$hooks = self::$pid = self::$productFields = [];
        self::$failUpdates = false;
    }

    public static function fieldId(string $name): int
    {
        return crc32($name) & 0xffff;
    }

    /** The $params WHMCS passes a module function for service `$sid`. */
    public static function params(int $sid, array $server, array $config, array $fields = []): array
    {
        foreach ($fields as $k => $v) {
            self::$fields[$sid][$k] = $v;
        }
        $model = new stdClass();
        $model->serviceProperties = new FakeProperties($sid);
        return $server + $config + [
            'serviceid' => $sid,
            'domain' => '',
            'customfields' => self::$fields[$sid] ?? [],
            'model' => $model,
        ];
    }
}

final class FakeProperties
{
    /** @var int */
    private $sid;

    public function __construct(int $sid)
    {
        $this->sid = $sid;
    }

    public function get($name)
    {
        return FakeWhmcs::$fields[$this->sid][$name] ?? '';
    }

    public function save(array $values)
    {
        foreach ($values as $k => $v) {
            FakeWhmcs::$fields[$this->sid][$k] = (string) $v;
        }
    }
}

function localAPI($command, $values = [], $adminUser = '')
{
    FakeWhmcs::$calls[] = [$command, $values];
    // callback.php under php -S is another process: its calls go to a file the test reads.
    $journal = getenv('PLESKRESELLER_TEST_JOURNAL');
    if ($journal) {
        file_put_contents($journal, json_encode([$command, $values]) . "\n", FILE_APPEND | LOCK_EX);
    }
    $sid = (int) ($values['serviceid'] ?? 0);
    switch ($command) {
        case 'GetClientsProducts':
            $cf = [];
            foreach (FakeWhmcs::$fields[$sid] ?? [] as $name => $v) {
                $cf[] = ['id' => FakeWhmcs::fieldId($name), 'name' => $name, 'value' => $v];
            }
            return ['result' => 'success', 'products' => ['product' => [['id' => $sid, 'pid' => FakeWhmcs::$pid[$sid] ?? 0, 'customfields' => ['customfield' => $cf]]]]];
        case 'GetProducts':
            $cf = [];
            foreach (FakeWhmcs::$productFields[(int) $values['pid']] ?? [] as $name => $id) {
                $cf[] = ['id' => $id, 'name' => $name];
            }
            return ['result' => 'success', 'products' => ['product' => [['pid' => (int) $values['pid'], 'customfields' => ['customfield' => $cf]]]]];
        case 'UpdateClientProduct':
            if (FakeWhmcs::$failUpdates) {
                return ['result' => 'error', 'message' => 'database down'];
            }
            $byId = [];
            foreach (array_keys(FakeWhmcs::$fields[$sid] ?? []) as $name) {
                $byId[FakeWhmcs::fieldId($name)] = $name;
            }
            foreach (unserialize(base64_decode($values['customfields'] ?? '')) ?: [] as $id => $v) {
                FakeWhmcs::$fields[$sid][$byId[$id]] = $v;
            }
            if (isset($values['status'])) {
                FakeWhmcs::$status[$sid] = $values['status'];
            }
            return ['result' => 'success', 'serviceid' => $sid];
        case 'ModuleCreate':
            return ['result' => 'success'];
    }
    return ['result' => 'error', 'message' => "the stub has no {$command}"];
}

function logModuleCall($module, $action, $request, $response, $processed = '', $replace = [])
{
    $text = is_string($response) ? $response : json_encode($response);
    foreach ($replace as $r) {
        $text = str_replace($r, '***', $text);
    }
    FakeWhmcs::$log[] = "{$module} {$action}: {$text}";
}

function logActivity($message, $userId = 0)
{
    FakeWhmcs::$log[] = $message;
}

function add_hook($name, $priority, $fn)
{
    FakeWhmcs::$hooks[$name][] = $fn;
}

require_once __DIR__ . '/../modules/servers/pleskreseller/pleskreseller.php';
require_once __DIR__ . '/../modules/servers/pleskreseller/lib/Callback.php';
require_once __DIR__ . '/../modules/servers/pleskreseller/hooks.php';
