<?php
/**
 * The central's webhooks land here: https://<store>/modules/servers/pleskreseller/callback.php
 * (set it as [webhooks] url in the central's config). It ships inside the module's folder, so
 * one copy installs both; WHMCS's init.php gives it localAPI, as gateway callbacks do.
 */

if (!defined('WHMCS')) {
    require_once __DIR__ . '/../../../init.php';
}
require_once __DIR__ . '/lib/Config.php';
require_once __DIR__ . '/lib/Callback.php';

$headers = [];
foreach ($_SERVER as $k => $v) {
    if (strpos($k, 'HTTP_') === 0) {
        $headers[strtolower(str_replace('_', '-', substr($k, 5)))] = (string) $v;
    }
}
if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
    http_response_code(405);
    echo "POST the central's webhooks here.\n";
    return;
}
[$status, $message] = (new PleskReseller\Callback(PleskReseller\Config::load()))
    ->handle($headers, (string) file_get_contents('php://input'), time());
http_response_code($status);
header('Content-Type: text/plain; charset=utf-8');
echo $message, "\n";
