<?php
/**
 * What callback.php (and the hooks) need without a WHMCS server record: config.php beside the
 * module (copied from config.sample.php), which returns an array.
 */

namespace PleskReseller;

final class Config
{
    /** @return array{webhook_secret: string, state_dir: string, file: string, buy_now_products: array} */
    public static function load(?string $file = null): array
    {
        if ($file === null) {
            $file = defined('PLESKRESELLER_CONFIG_FILE') ? (string) PLESKRESELLER_CONFIG_FILE : dirname(__DIR__) . '/config.php';
        }
        $c = is_file($file) ? require $file : [];
        if (!is_array($c)) {
            $c = [];
        }
        $secret = (string) ($c['webhook_secret'] ?? '');
        if ($secret === '' && !empty($c['webhook_secret_file'])) {
            $secret = trim((string) @file_get_contents((string) $c['webhook_secret_file']));
        }
        $dir = (string) ($c['state_dir'] ?? '');
        if ($dir === '') {
            $dir = sys_get_temp_dir() . '/pleskreseller-' . substr(hash('sha256', dirname(__DIR__)), 0, 12);
        }
        return ['webhook_secret' => $secret, 'state_dir' => $dir, 'file' => $file, 'buy_now_products' => (array) ($c['buy_now_products'] ?? [])];
    }
}
