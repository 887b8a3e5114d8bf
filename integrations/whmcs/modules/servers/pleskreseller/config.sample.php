<?php
// Copy to config.php beside this file (same folder as callback.php) and fill in.
return [
    // The same whsec_<base64> secret as the central's [webhooks] secret_file.
    'webhook_secret' => '',
    // Or a file holding it, readable by the web server only:
    'webhook_secret_file' => '',
    // Where processed webhook ids and the license/host links are kept (not web-served).
    'state_dir' => '',
    // Buy Now: the [sell] extension id => the WHMCS product id that sells it.
    'buy_now_products' => [
        // 'seo-toolkit' => 12,
    ],
];
