<?php
/**
 * Buy Now landing (see lib/BuyNow.php): the central's /buy redirects to
 * cart.php?a=add&pid=...&ext={extension-id}&kn={kn}&token={token}. WHMCS adds the product;
 * these hooks remember kn and token for the session, pre-fill the product's custom fields on
 * the order form, and write them to the new service at checkout if the form lost them.
 */

if (!defined('WHMCS')) {
    die('This file cannot be accessed directly');
}

require_once __DIR__ . '/lib/Config.php';
require_once __DIR__ . '/lib/BuyNow.php';

use PleskReseller\BuyNow;
use PleskReseller\Config;

/** Custom field name => id of a product, from WHMCS's GetProducts. */
function pleskreseller_product_fields(int $pid): array
{
    $r = localAPI('GetProducts', ['pid' => $pid]);
    $out = [];
    foreach ($r['products']['product'][0]['customfields']['customfield'] ?? [] as $f) {
        $out[(string) $f['name']] = (int) $f['id'];
    }
    return $out;
}

function pleskreseller_buynow_capture(array $query): ?string
{
    try {
        $b = BuyNow::fromQuery($query, (array) (Config::load()['buy_now_products'] ?? []));
    } catch (\InvalidArgumentException $e) {
        return $e->getMessage();
    }
    if ($b !== null) {
        $_SESSION['pleskreseller_buynow'] = $b;
    }
    return null;
}

add_hook('ClientAreaPageCart', 1, function ($vars) {
    $err = pleskreseller_buynow_capture($_GET);
    return $err === null ? [] : ['errormessage' => $err];
});

add_hook('ClientAreaFooterOutput', 1, function ($vars) {
    $b = $_SESSION['pleskreseller_buynow'] ?? null;
    if (!is_array($b) || ($vars['filename'] ?? '') !== 'cart') {
        return '';
    }
    $ids = pleskreseller_product_fields((int) $b['pid']);
    $byId = [];
    foreach ($b['fields'] as $name => $value) {
        if (isset($ids[$name])) {
            $byId[$ids[$name]] = $value;
        }
    }
    return BuyNow::prefillScript($byId);
});

add_hook('AfterShoppingCartCheckout', 1, function ($vars) {
    $b = $_SESSION['pleskreseller_buynow'] ?? null;
    if (!is_array($b)) {
        return;
    }
    foreach ((array) ($vars['ServiceIDs'] ?? []) as $sid) {
        $r = localAPI('GetClientsProducts', ['serviceid' => (int) $sid]);
        $p = $r['products']['product'][0] ?? null;
        if (!$p || (int) $p['pid'] !== (int) $b['pid']) {
            continue;
        }
        $set = [];
        foreach ($p['customfields']['customfield'] ?? [] as $f) {
            if (isset($b['fields'][$f['name']]) && trim((string) $f['value']) === '') {
                $set[(int) $f['id']] = $b['fields'][$f['name']];
            }
        }
        if ($set) {
            localAPI('UpdateClientProduct', ['serviceid' => (int) $sid, 'customfields' => base64_encode(serialize($set))]);
        }
    }
    unset($_SESSION['pleskreseller_buynow']);
});
