<?php

use PHPUnit\Framework\TestCase;
use PleskReseller\BuyNow;
use PleskReseller\Service;

/** The Buy Now landing: the central's /buy redirect → the product and its pre-filled fields. */
final class BuyNowTest extends TestCase
{
    /** @var array<string,callable[]> */
    private static $hooks;

    public static function setUpBeforeClass(): void
    {
        // hooks.php registered its hooks when the bootstrap loaded it.
        self::$hooks = FakeWhmcs::$hooks;
    }

    protected function setUp(): void
    {
        FakeWhmcs::reset();
        $_SESSION = [];
    }

    private function run_hook(string $name, array $vars)
    {
        return self::$hooks[$name][0]($vars);
    }

    public function testTheRedirectNamesTheProductAndTheFieldsToFill(): void
    {
        $q = ['a' => 'add', 'ext' => 'seo-toolkit', 'kn' => 'plsk123456780001', 'token' => 't x', 'product-id' => '9'];
        $this->assertSame(
            ['pid' => 12, 'extension' => 'seo-toolkit', 'fields' => [Service::F_PARENT_KN => 'PLSK.12345678.0001', Service::F_BUY_TOKEN => 't x']],
            BuyNow::fromQuery($q, ['seo-toolkit' => 12])
        );
        // No mapping: the product id in the link itself.
        $this->assertSame(9, BuyNow::fromQuery($q, [])['pid']);
        $this->assertNull(BuyNow::fromQuery(['a' => 'add', 'pid' => '3'], []), 'a plain cart link is no Buy Now');
    }

    public function testABadKeyNumberOrAnUnmappedExtensionIsOneSentence(): void
    {
        foreach ([
            [['ext' => 'seo-toolkit', 'kn' => '<script>'], 'The key number <script> from Plesk\'s Buy Now is not of the form PLSK.12345678.0001.'],
            [['ext' => 'other', 'kn' => 'PLSK.12345678.0001'], 'The extension other is mapped to no WHMCS product: add it to buy_now_products in the module\'s config.php.'],
        ] as [$q, $sentence]) {
            try {
                BuyNow::fromQuery($q, []);
                $this->fail('accepted ' . json_encode($q));
            } catch (InvalidArgumentException $e) {
                $this->assertSame($sentence, $e->getMessage());
            }
        }
    }

    public function testTheHooksPrefillTheFormAndFillTheNewServiceAtCheckout(): void
    {
        $_GET = ['a' => 'add', 'pid' => '12', 'ext' => 'seo-toolkit', 'kn' => 'PLSK.12345678.0001', 'token' => 'abc'];
        $this->assertSame([], $this->run_hook('ClientAreaPageCart', []));
        FakeWhmcs::$productFields[12] = [Service::F_PARENT_KN => 71, Service::F_BUY_TOKEN => 72, 'Other' => 73];
        $js = $this->run_hook('ClientAreaFooterOutput', ['filename' => 'cart']);
        $this->assertStringContainsString('f("customfield[71]","PLSK.12345678.0001")', $js);
        $this->assertStringContainsString('f("customfield[72]","abc")', $js);
        $this->assertStringNotContainsString('customfield[73]', $js);
        $this->assertSame('', $this->run_hook('ClientAreaFooterOutput', ['filename' => 'clientarea']));

        // Checkout: the new service of that product gets the key number if the form lost it.
        FakeWhmcs::$pid = [501 => 12, 502 => 4];
        FakeWhmcs::$fields[501] = [Service::F_PARENT_KN => '', Service::F_BUY_TOKEN => 'kept'];
        FakeWhmcs::$fields[502] = [Service::F_PARENT_KN => ''];
        $this->run_hook('AfterShoppingCartCheckout', ['ServiceIDs' => [501, 502]]);
        $this->assertSame('PLSK.12345678.0001', FakeWhmcs::$fields[501][Service::F_PARENT_KN]);
        $this->assertSame('kept', FakeWhmcs::$fields[501][Service::F_BUY_TOKEN]);
        $this->assertSame('', FakeWhmcs::$fields[502][Service::F_PARENT_KN], 'another product is left alone');
        $this->assertArrayNotHasKey('pleskreseller_buynow', $_SESSION);

        $_GET = ['a' => 'add', 'ext' => 'seo-toolkit', 'kn' => 'nope'];
        $this->assertStringContainsString('The key number nope', $this->run_hook('ClientAreaPageCart', [])['errormessage']);
    }
}
