<?php
// Run by scripts/lint-php.sh on PHP 7.4 and 8.3 (PHP.wasm): the module's pure parts work
// there, not only parse. Exits 1 with a sentence on the first wrong result.
define('WHMCS', true);
require __DIR__ . '/../modules/servers/pleskreseller/lib/Webhook.php';
require __DIR__ . '/../modules/servers/pleskreseller/lib/BuyNow.php';
require __DIR__ . '/../modules/servers/pleskreseller/lib/Central.php';

use PleskReseller\BuyNow;
use PleskReseller\Central;
use PleskReseller\Webhook;
use PleskReseller\WebhookError;

function check(bool $ok, string $what): void
{
    if (!$ok) {
        fwrite(STDERR, "PHP " . PHP_VERSION . ": {$what}\n");
        exit(1);
    }
}

// The Standard Webhooks spec's vector.
$secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
$sig = Webhook::sign($secret, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}');
check($sig === 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=', "the spec's vector signs as {$sig}");
$h = ['webhook-id' => 'msg_p5jXN8AQM9LWM0D4loKWxJek', 'webhook-timestamp' => '1614265330', 'webhook-signature' => 'v1,x ' . $sig];
Webhook::verify($secret, $h, '{"test": 2432232314}', 1614265330);
try {
    Webhook::verify($secret, $h, '{"test": 1}', 1614265330);
    check(false, 'a changed body verified');
} catch (WebhookError $e) {
}
$b = BuyNow::fromQuery(['ext' => 'seo-toolkit', 'kn' => 'plsk123456780001'], ['seo-toolkit' => 7]);
check($b['pid'] === 7 && $b['fields']['Plesk key number'] === 'PLSK.12345678.0001', 'Buy Now parses');
$c = Central::fromParams(['serverhostname' => 'c.example', 'serverport' => '8791', 'serversecure' => 'on', 'serverpassword' => 't']);
check($c->adminUrl() === 'https://c.example:8791' && $c->agentsUrl() === 'https://c.example:8790', 'server fields make the URLs');
echo "smoke ok on PHP " . PHP_VERSION . "\n";
