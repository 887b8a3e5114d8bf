<?php
/**
 * Plesk Reseller Central: a WHMCS provisioning module that sells Plesk licenses and Plesk
 * extensions through the reseller's central (plesk-reseller-central). Every action queues at
 * the central and returns at once; the central calls KA exactly once per order or operation,
 * installs the result on the customer's server through its agent, and reports the outcome to
 * callback.php by signed webhook.
 *
 * WHMCS server fields: hostname (or IP) and port = the central's admin_listen, secure = TLS,
 * password = the admin token, access hash = the agents' URL (for /healthz; default port 8790).
 */

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

require_once __DIR__ . '/lib/Central.php';
require_once __DIR__ . '/lib/Service.php';
require_once __DIR__ . '/lib/Config.php';

use PleskReseller\Answer;
use PleskReseller\Central;
use PleskReseller\Config;
use PleskReseller\Links;
use PleskReseller\Service;

/** Client area and admin tab reads must not hold a page for long. */
const PLESKRESELLER_READ_TIMEOUT = 5;

function pleskreseller_MetaData()
{
    return [
        'DisplayName' => 'Plesk Reseller Central',
        'APIVersion' => '1.1',
        'RequiresServer' => true,
        'DefaultNonSSLPort' => '8791',
        'DefaultSSLPort' => '8791',
    ];
}

function pleskreseller_ConfigOptions()
{
    return [
        'Product type' => [
            'Type' => 'dropdown',
            'Options' => ['plesk' => 'Plesk license', 'extension' => 'Plesk extension'],
            'Default' => 'plesk',
            'Description' => 'A Plesk license for the customer\'s server, or an extension on an existing key',
        ],
        'KA items' => [
            'Type' => 'text',
            'Size' => '60',
            'Description' => 'Comma-separated KA item constants this package stands for; sent by Change Package (a new Plesk license uses the central\'s [ka] plesk_item)',
        ],
        'Extension id' => [
            'Type' => 'text',
            'Size' => '40',
            'Description' => 'Extension products: the extension id as in the central\'s [sell] section',
        ],
    ];
}

/** One log line per call, the admin token masked. */
function pleskreseller_log(string $action, $request, $response, string $processed, array $params): void
{
    if (function_exists('logModuleCall')) {
        $secret = (string) ($params['serverpassword'] ?? '');
        logModuleCall('pleskreseller', $action, $request, $response, $processed, $secret === '' ? [] : [$secret]);
    }
}

function pleskreseller_central(array $params, int $timeout = 20): Central
{
    return Central::fromParams($params, $timeout);
}

function pleskreseller_type(array $params): string
{
    return ($params['configoption1'] ?? '') === 'extension' ? 'extension' : 'plesk';
}

/** @return string[] */
function pleskreseller_items(string $list): array
{
    return array_values(array_filter(array_map('trim', explode(',', $list)), 'strlen'));
}

function pleskreseller_links(): Links
{
    return new Links(Config::load()['state_dir']);
}

function pleskreseller_TestConnection(array $params)
{
    $central = pleskreseller_central($params, 10);
    // Any host id: 200 or the central's own 404 sentence proves the token; 401 refuses it.
    $a = $central->admin('GET', '/admin/v1/hosts/whmcs-connection-test');
    pleskreseller_log('TestConnection', $central->adminUrl(), $a->body, (string) $a->status, $params);
    if ($a->status === 401 || $a->status === 429) {
        $why = is_string($a->json['error'] ?? null) ? $a->json['error'] : "HTTP {$a->status}";
        return ['success' => false, 'error' => "The central at {$central->adminUrl()} refused the admin token ({$why})."];
    }
    if (!($a->ok() || ($a->status === 404 && isset($a->json['error'])))) {
        return ['success' => false, 'error' => $a->sentence('checking the admin token')];
    }
    $h = $central->healthz();
    if (!$h->ok() || ($h->json['status'] ?? '') !== 'ok') {
        return ['success' => false, 'error' => "The admin token works, but {$central->agentsUrl()}/healthz is not ok: " . $h->sentence('reading /healthz')];
    }
    return ['success' => true, 'error' => ''];
}

/**
 * Plesk: an order for the service's server (custom field "Host id", else the service's
 * domain); when that host is not enrolled yet, a host-bound enroll key goes to the custom
 * field "Enroll key" for the server's cloud-init, and the order follows when the host enrolls
 * (callback.php runs ModuleCreate again on host.enrolled). Extension: an order for the key
 * number in "Plesk key number" (Buy Now's kn). The order id is the service's, so a retried
 * create returns the same order and KA is called once.
 */
function pleskreseller_CreateAccount(array $params)
{
    try {
        $svc = new Service($params);
        $central = pleskreseller_central($params);
        $orderId = $svc->opId('create');
        if (pleskreseller_type($params) === 'extension') {
            $kn = $svc->get(Service::F_PARENT_KN);
            $ext = trim((string) ($params['configoption3'] ?? ''));
            if ($kn === '') {
                return "Service {$svc->id()} has no Plesk key number: fill its custom field \"" . Service::F_PARENT_KN . '" (Buy Now fills it from kn).';
            }
            if ($ext === '') {
                return 'The product has no Extension id in its module settings.';
            }
            $body = ['order_id' => $orderId, 'key_number' => $kn, 'extension' => $ext];
        } else {
            $host = $svc->get(Service::F_HOST);
            if ($host === '') {
                $host = trim((string) ($params['domain'] ?? ''));
            }
            if (!preg_match('/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/', $host)) {
                return "Service {$svc->id()} names no valid server: its custom field \"" . Service::F_HOST . "\" or domain ({$host}) must be the host id at the central.";
            }
            $body = ['order_id' => $orderId, 'host' => $host, 'plesk' => true];
        }
        $a = $central->admin('POST', '/admin/v1/orders', $body);
        pleskreseller_log('CreateAccount', $body, $a->body, (string) $a->status, $params);
        if ($a->ok()) {
            $state = (string) ($a->json['state'] ?? 'pending');
            if ($state === 'failed' || $state === 'attention') {
                // Create again on an order KA refused or could not settle: the central drives
                // it again from its lookup in KA, so a key that exists is never bought twice.
                $r = $central->admin('POST', '/admin/v1/orders/' . rawurlencode($orderId) . '/retry');
                pleskreseller_log('CreateAccount retry', $orderId, $r->body, (string) $r->status, $params);
                if (!$r->ok()) {
                    return $r->sentence("retrying order {$orderId}");
                }
                $state = (string) ($r->json['state'] ?? 'pending');
            }
            $svc->save([Service::F_ORDER => $orderId, Service::F_STATE => 'order ' . $state]);
            return 'success';
        }
        if (isset($body['host']) && $a->status === 404 && isset($a->json['error']) && stripos($a->json['error'], 'host') !== false) {
            return pleskreseller_enroll($svc, $central, $body['host'], $params);
        }
        return $a->sentence("ordering {$orderId}");
    } catch (\Throwable $e) {
        pleskreseller_log('CreateAccount', $params['serviceid'] ?? '', $e->getMessage(), 'exception', $params);
        return $e->getMessage();
    }
}

/** The host is not at the central yet: a key bound to it, once (a retry keeps the key). */
function pleskreseller_enroll(Service $svc, Central $central, string $host, array $params): string
{
    pleskreseller_links()->put('host', $host, $svc->id());
    if ($svc->get(Service::F_ENROLL) !== '') {
        return 'success';
    }
    $body = ['host' => $host, 'note' => 'WHMCS service ' . $svc->id()];
    $a = $central->admin('POST', '/admin/v1/enroll-keys', $body);
    pleskreseller_log('CreateAccount enroll key', $body, $a->ok() ? '(key not logged)' : $a->body, (string) $a->status, $params);
    if ($a->noRoute()) {
        return "Host {$host} is not registered at the central, and this central cannot mint enroll keys (it has no POST /admin/v1/enroll-keys); run hosts add {$host} there.";
    }
    if (!$a->ok() || !isset($a->json['key'])) {
        return $a->sentence("minting an enroll key for host {$host}");
    }
    $svc->save([Service::F_ENROLL => (string) $a->json['key'], Service::F_STATE => "waiting for host {$host} to enroll"]);
    return 'success';
}

/** The license id of the service's order: from its custom field, else from the order. */
function pleskreseller_license(Service $svc, Central $central): array
{
    $id = $svc->get(Service::F_LICENSE);
    if ($id !== '') {
        return [$id, null];
    }
    $order = $svc->get(Service::F_ORDER);
    if ($order === '') {
        return [null, "Service {$svc->id()} has no order at the central yet; run Create first."];
    }
    $a = $central->admin('GET', '/admin/v1/orders/' . rawurlencode($order));
    if (!$a->ok()) {
        return [null, $a->sentence("reading order {$order}")];
    }
    if (empty($a->json['ka_key_id'])) {
        return [null, "Order {$order} is " . ($a->json['state'] ?? '?') . ' and has no license yet; try again once it is licensed.'];
    }
    $id = (string) $a->json['ka_key_id'];
    $svc->save([Service::F_LICENSE => $id, Service::F_KN => (string) ($a->json['ka_key_number'] ?? '')]);
    pleskreseller_links()->put('license', $id, $svc->id());
    return [$id, null];
}

/** A license operation (section 9 of the central's contract), idempotent by its op id. */
function pleskreseller_operation(array $params, string $what, string $action, string $verb, array $extra = []): string
{
    try {
        $svc = new Service($params);
        $central = pleskreseller_central($params);
        [$license, $err] = pleskreseller_license($svc, $central);
        if ($err !== null) {
            return $err;
        }
        $body = ['op_id' => $svc->opId($action), 'kind' => $verb] + $extra;
        $a = $central->admin('POST', '/admin/v1/licenses/' . rawurlencode($license) . '/operations', $body);
        pleskreseller_log($what, $body, $a->body, (string) $a->status, $params);
        if (!$a->ok()) {
            return $a->sentence("{$verb} of license {$license}");
        }
        if (($a->json['state'] ?? '') === 'failed') {
            // KA's refusal, verbatim.
            return (string) ($a->json['error'] ?? "The central could not {$verb} license {$license}.");
        }
        $svc->save([Service::F_STATE => "{$verb} " . ($a->json['state'] ?? 'pending')]);
        return 'success';
    } catch (\Throwable $e) {
        pleskreseller_log($what, $params['serviceid'] ?? '', $e->getMessage(), 'exception', $params);
        return $e->getMessage();
    }
}

function pleskreseller_SuspendAccount(array $params)
{
    return pleskreseller_operation($params, 'SuspendAccount', 'suspend', 'suspend');
}

function pleskreseller_UnsuspendAccount(array $params)
{
    return pleskreseller_operation($params, 'UnsuspendAccount', 'resume', 'resume');
}

function pleskreseller_TerminateAccount(array $params)
{
    // KA does not cascade; a Plesk license's extensions sold here are their own services.
    return pleskreseller_operation($params, 'TerminateAccount', 'terminate', 'terminate', ['with_extensions' => true]);
}

function pleskreseller_ChangePackage(array $params)
{
    $items = pleskreseller_items((string) ($params['configoption2'] ?? ''));
    if (!$items) {
        return 'The new product has no KA items in its module settings, so there is nothing to change the license to.';
    }
    return pleskreseller_operation($params, 'ChangePackage', 'change:' . implode(',', $items), 'change', ['items' => $items]);
}

/**
 * What the central knows of the service (never KA on a page view): state, key number,
 * installed on the server or not, the last event.
 */
function pleskreseller_status(array $params): array
{
    $svc = new Service($params);
    $central = pleskreseller_central($params, PLESKRESELLER_READ_TIMEOUT);
    $out = [
        'state' => $svc->get(Service::F_STATE) ?: 'not ordered',
        'keyNumber' => $svc->get(Service::F_KN),
        'installed' => 'unknown',
        'lastEvent' => $svc->get(Service::F_LAST_EVENT) ?: 'none yet',
        'enrollKey' => $svc->get(Service::F_ENROLL) !== '' ? 'issued' : '',
        'error' => '',
    ];
    $order = $svc->get(Service::F_ORDER);
    if ($order === '') {
        return $out;
    }
    $o = $central->admin('GET', '/admin/v1/orders/' . rawurlencode($order));
    if (!$o->ok()) {
        $out['error'] = $o->sentence("reading order {$order}");
        return $out;
    }
    $out['state'] = 'order ' . ($o->json['state'] ?? '?');
    if (!empty($o->json['error'])) {
        // KA's answer verbatim (the central keeps it with the order).
        $out['error'] = (string) $o->json['error'];
    }
    $out['keyNumber'] = (string) ($o->json['ka_key_number'] ?? $out['keyNumber']);
    $out['installed'] = ($o->json['state'] ?? '') === 'done' ? 'yes' : 'not yet';
    // Read only once the service knows its license (an operation or a webhook told it): a
    // central without the licenses routes would take each page view as a wrong token.
    $license = $svc->get(Service::F_LICENSE);
    if ($license !== '') {
        $l = $central->admin('GET', '/admin/v1/licenses/' . rawurlencode($license));
        if ($l->ok()) {
            $out['state'] = (string) ($l->json['state'] ?? $out['state']);
            $out['keyNumber'] = (string) ($l->json['key_number'] ?? $out['keyNumber']);
        }
    }
    if (pleskreseller_type($params) === 'plesk' && $out['keyNumber'] !== '') {
        // Installed = the server's last report carries this key number.
        $h = $central->admin('GET', '/admin/v1/hosts/' . rawurlencode((string) ($o->json['host'] ?? '')));
        if ($h->ok()) {
            $out['installed'] = ($h->json['key_number'] ?? '') === $out['keyNumber'] ? 'yes' : 'not yet';
        }
    }
    return $out;
}

function pleskreseller_ClientArea(array $params)
{
    try {
        $s = pleskreseller_status($params);
    } catch (\Throwable $e) {
        $s = ['error' => 'The license state cannot be shown right now.'];
    }
    return [
        'tabOverviewModuleOutputTemplate' => 'templates/overview.tpl',
        'templateVariables' => $s,
    ];
}

function pleskreseller_AdminServicesTabFields(array $params)
{
    try {
        $s = pleskreseller_status($params);
    } catch (\Throwable $e) {
        return ['Central' => htmlspecialchars($e->getMessage())];
    }
    $e = function ($v) {
        return htmlspecialchars((string) $v, ENT_QUOTES);
    };
    $fields = [
        'Central state' => $e($s['state']),
        'License key number' => $e($s['keyNumber'] ?: '-'),
        'Installed on the server' => $e($s['installed']),
        'Last event' => $e($s['lastEvent']),
    ];
    if ($s['error'] !== '') {
        $fields['Central error'] = $e($s['error']);
    }
    return $fields;
}
