<?php
// php -S router: callback.php with the WHMCS stub, for the end-to-end test (whmcs.rs) where the
// central's webhooks are POSTed here. The config comes from PLESKRESELLER_CONFIG.
require __DIR__ . '/bootstrap.php';
require __DIR__ . '/../modules/servers/pleskreseller/callback.php';
