<?php
/**
 * Buy Now: Plesk's "Buy" button goes to the central's /buy, which checks the extension is sold
 * and the key number known, then redirects to the store ([store] buy_redirect), e.g.
 *   https://shop.example.com/cart.php?a=add&pid={product-id}&ext={extension-id}&kn={kn}&token={token}
 * This reads that landing's query: which WHMCS product to add, and the custom fields to fill
 * ("Plesk key number" from kn, "Buy Now token" from token) so CreateAccount knows the server.
 */

namespace PleskReseller;

require_once __DIR__ . '/Service.php';

final class BuyNow
{
    /**
     * @param array $query     the landing's $_GET
     * @param array $products  config.php's buy_now_products: extension id => WHMCS product id
     * @return array{pid:int, extension:string, fields:array<string,string>}|null  null: not a Buy Now landing
     * @throws \InvalidArgumentException one sentence naming the bad value
     */
    public static function fromQuery(array $query, array $products): ?array
    {
        $kn = trim((string) ($query['kn'] ?? ''));
        $ext = trim((string) ($query['ext'] ?? $query['extension-id'] ?? ''));
        if ($kn === '' && $ext === '') {
            return null;
        }
        // The central normalises before redirecting; accept both PLSK.12345678.0001 and raw.
        $norm = strtoupper(str_replace('.', '', $kn));
        if (!preg_match('/^([A-Z]+)(\d{8})(\d{4})$/', $norm, $m)) {
            throw new \InvalidArgumentException("The key number {$kn} from Plesk's Buy Now is not of the form PLSK.12345678.0001.");
        }
        $pid = (int) ($query['pid'] ?? $query['product-id'] ?? 0);
        if ($ext !== '' && isset($products[$ext])) {
            $pid = (int) $products[$ext];
        }
        if ($pid <= 0) {
            throw new \InvalidArgumentException("The extension {$ext} is mapped to no WHMCS product: add it to buy_now_products in the module's config.php.");
        }
        $token = substr(trim((string) ($query['token'] ?? '')), 0, 200);
        $fields = [Service::F_PARENT_KN => "{$m[1]}.{$m[2]}.{$m[3]}"];
        if ($token !== '') {
            $fields[Service::F_BUY_TOKEN] = $token;
        }
        return ['pid' => $pid, 'extension' => $ext, 'fields' => $fields];
    }

    /** JavaScript that fills the product form's custom field inputs (ids => values). */
    public static function prefillScript(array $byId): string
    {
        $js = '';
        foreach ($byId as $id => $value) {
            $js .= 'f(' . json_encode('customfield[' . (int) $id . ']') . ',' . json_encode((string) $value, JSON_HEX_TAG | JSON_HEX_AMP | JSON_HEX_APOS | JSON_HEX_QUOT) . ');';
        }
        return '<script>(function(){function f(n,v){var e=document.getElementsByName(n);'
            . 'for(var i=0;i<e.length;i++){if(!e[i].value){e[i].value=v;}}}' . $js . '})();</script>';
    }
}
