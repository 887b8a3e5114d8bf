<?php

use PHPUnit\Framework\TestCase;
use PleskReseller\Central;
use PleskReseller\Service;

/**
 * The module against a real central (started by crates/central/tests/whmcs.rs with the fake
 * KA and a real agent with the stand-in plesk), through the env vars below.
 */
final class ModuleTest extends TestCase
{
    /** @var array<string,string> */
    private static $env = [];

    public static function setUpBeforeClass(): void
    {
        foreach (['ADMIN_URL', 'ADMIN_TOKEN', 'AGENTS_URL', 'HOST', 'KN', 'EXTENSION', 'ITEMS', 'OUT'] as $k) {
            self::$env[$k] = (string) getenv('PLESKRESELLER_TEST_' . $k);
        }
    }

    protected function setUp(): void
    {
        FakeWhmcs::reset();
        if (self::$env['ADMIN_URL'] === '') {
            if (getenv('CI') === 'true') {
                $this->fail('CI=true but PLESKRESELLER_TEST_ADMIN_URL is unset: run these through cargo test --test whmcs');
            }
            $this->markTestSkipped('no central: run through cargo test -p plesk-reseller-central --test whmcs');
        }
    }

    private function server(string $token = ''): array
    {
        $u = parse_url(self::$env['ADMIN_URL']);
        return [
            'serverhostname' => $u['host'],
            'serverport' => (string) $u['port'],
            'serversecure' => '',
            'serverhttpprefix' => $u['scheme'],
            'serverpassword' => $token === '' ? self::$env['ADMIN_TOKEN'] : $token,
            'serveraccesshash' => self::$env['AGENTS_URL'],
        ];
    }

    private function params(int $sid, array $config, array $fields = []): array
    {
        return FakeWhmcs::params($sid, $this->server(), $config, $fields);
    }

    private function central(): Central
    {
        return new Central(self::$env['ADMIN_URL'], self::$env['ADMIN_TOKEN'], self::$env['AGENTS_URL']);
    }

    /** For the Rust side's assertions on the fake KA and the agent. */
    private function record(string $what, string $value): void
    {
        if (self::$env['OUT'] !== '') {
            file_put_contents(self::$env['OUT'], "{$what}={$value}\n", FILE_APPEND);
        }
    }

    private function waitOrder(string $id, string $state): array
    {
        $deadline = time() + 90;
        do {
            $a = $this->central()->admin('GET', '/admin/v1/orders/' . $id);
            if (($a->json['state'] ?? '') === $state) {
                return $a->json;
            }
            usleep(200000);
        } while (time() < $deadline);
        $this->fail("order {$id} never became {$state}: {$a->body}");
    }

    private const PLESK = ['configoption1' => 'plesk', 'configoption2' => '', 'configoption3' => ''];

    public function testConnectionWithTheAdminTokenPasses(): void
    {
        $r = pleskreseller_TestConnection($this->server());
        $this->assertSame(['success' => true, 'error' => ''], $r);
    }

    public function testConnectionWithAWrongTokenFailsWithASentence(): void
    {
        $r = pleskreseller_TestConnection($this->server('not-the-admin-token-0000'));
        $this->assertFalse($r['success']);
        $this->assertSame('The central at ' . self::$env['ADMIN_URL'] . ' refused the admin token (missing or wrong admin token).', $r['error']);
        $this->assertStringNotContainsString('not-the-admin-token', implode("\n", FakeWhmcs::$log), 'the token is masked in the module log');
    }

    public function testConnectionToNoCentralFailsWithASentence(): void
    {
        $s = stream_socket_server('tcp://127.0.0.1:0');
        $port = substr(stream_socket_get_name($s, false), strrpos(stream_socket_get_name($s, false), ':') + 1);
        fclose($s);
        $r = pleskreseller_TestConnection(['serverport' => $port] + $this->server());
        $this->assertFalse($r['success']);
        $this->assertStringStartsWith("The central at http://127.0.0.1:{$port} cannot be reached while checking the admin token: ", $r['error']);
        $this->assertStringContainsString('refused', $r['error']);
    }

    public function testKasRefusalIsShownVerbatimAndCreateAgainRetriesTheOrder(): void
    {
        $config = ['configoption1' => 'extension', 'configoption2' => '', 'configoption3' => 'not-at-ka'];
        $p = $this->params(3001, $config, [Service::F_PARENT_KN => self::$env['KN']]);
        $this->assertSame('success', pleskreseller_CreateAccount($p), 'queued; KA answers later');
        $failed = $this->waitOrder('whmcs-3001-create-1', 'failed');
        $tab = pleskreseller_AdminServicesTabFields($this->params(3001, $config));
        $this->assertSame('order failed', $tab['Central state']);
        $this->assertSame(htmlspecialchars($failed['error'], ENT_QUOTES), $tab['Central error']);
        $this->assertStringContainsString('ADD-UNKNOWN-1M', $failed['error'], "KA's body, verbatim");
        // The admin clicks Create again: the central retries the same order from its lookup.
        $this->assertSame('success', pleskreseller_CreateAccount($this->params(3001, $config)));
        $this->record('refused_order', 'whmcs-3001-create-1');
        $deadline = time() + 60;
        do {
            $o = $this->central()->admin('GET', '/admin/v1/orders/whmcs-3001-create-1')->json;
            usleep(200000);
        } while (($o['ka_attempts'] ?? 0) < 2 && time() < $deadline);
        $this->assertSame(2, $o['ka_attempts'], json_encode($o));
    }

    public function testAnExtensionCreateOrdersOnceForBuyNowsKeyNumberAndTheServerRetrieves(): void
    {
        $p = $this->params(2001, ['configoption1' => 'extension', 'configoption2' => '', 'configoption3' => self::$env['EXTENSION']], [Service::F_PARENT_KN => self::$env['KN']]);
        $this->assertSame('success', pleskreseller_CreateAccount($p));
        // WHMCS retries (a timeout, an admin's second click): the same order, nothing bought.
        $this->assertSame('success', pleskreseller_CreateAccount($this->params(2001, $p)));
        $this->assertSame('whmcs-2001-create-1', FakeWhmcs::$fields[2001][Service::F_ORDER]);
        $this->record('extension_order', 'whmcs-2001-create-1');
        $done = $this->waitOrder('whmcs-2001-create-1', 'done');
        $this->assertSame(self::$env['HOST'], $done['host']);

        $bad = $this->params(2002, ['configoption1' => 'extension', 'configoption2' => '', 'configoption3' => 'not-sold-here'], [Service::F_PARENT_KN => self::$env['KN']]);
        $this->assertSame('The extension "not-sold-here" is not in the [sell] list of the config; nothing was bought.', pleskreseller_CreateAccount($bad));
        $none = $this->params(2003, ['configoption1' => 'extension', 'configoption2' => '', 'configoption3' => self::$env['EXTENSION']]);
        $this->assertStringContainsString('has no Plesk key number', pleskreseller_CreateAccount($none));
    }

    /** @depends testAnExtensionCreateOrdersOnceForBuyNowsKeyNumberAndTheServerRetrieves */
    public function testAPleskCreateOrdersOnceAndTheAgentInstallsIt(): void
    {
        $p = $this->params(1001, self::PLESK, [Service::F_HOST => self::$env['HOST']]);
        $this->assertSame('success', pleskreseller_CreateAccount($p));
        $this->assertSame('success', pleskreseller_CreateAccount($this->params(1001, self::PLESK)));
        $this->record('plesk_order', 'whmcs-1001-create-1');
        $done = $this->waitOrder('whmcs-1001-create-1', 'done');

        // The admin tab and the client area read the central, and see it installed.
        $deadline = time() + 30;
        do {
            $tab = pleskreseller_AdminServicesTabFields($this->params(1001, self::PLESK));
            usleep(200000);
        } while ($tab['Installed on the server'] !== 'yes' && time() < $deadline);
        $this->assertSame('yes', $tab['Installed on the server'], json_encode($tab));
        $this->assertSame($done['ka_key_number'], $tab['License key number']);
        $ca = pleskreseller_ClientArea($this->params(1001, self::PLESK));
        $this->assertSame('templates/overview.tpl', $ca['tabOverviewModuleOutputTemplate']);
        $this->assertSame($done['ka_key_number'], $ca['templateVariables']['keyNumber']);

        $unnamed = $this->params(1002, self::PLESK);
        $this->assertSame('Service 1002 names no valid server: its custom field "Host id" or domain () must be the host id at the central.', pleskreseller_CreateAccount($unnamed));
    }

    public function testAPleskCreateForAServerNotEnrolledYetMintsOneHostBoundEnrollKey(): void
    {
        $host = 'web-new-' . bin2hex(random_bytes(3));
        $p = $this->params(1003, self::PLESK, [Service::F_HOST => $host]);
        $this->assertSame('success', pleskreseller_CreateAccount($p));
        $key = FakeWhmcs::$fields[1003][Service::F_ENROLL];
        $this->assertMatchesRegularExpression('/^prk_[^_]+_.{20,}$/', $key);
        $this->assertSame('success', pleskreseller_CreateAccount($this->params(1003, self::PLESK)));
        $this->assertSame($key, FakeWhmcs::$fields[1003][Service::F_ENROLL], 'a retry mints no second key');
        $this->assertStringNotContainsString($key, implode("\n", FakeWhmcs::$log), 'the key is not logged');
    }

    /** @depends testAPleskCreateOrdersOnceAndTheAgentInstallsIt */
    public function testSuspendUnsuspendChangeAndTerminateActOnceEachAlsoWhenRetried(): void
    {
        $sid = 1001;
        // setUp forgot the service's fields: Create again restores them with the same order
        // id, and the central answers the stored order (nothing is bought again). That Create
        // is an action of its own, so the operations' ids count from 2.
        $p = $this->params($sid, self::PLESK, [Service::F_HOST => self::$env['HOST']]);
        $this->assertSame('success', pleskreseller_CreateAccount($p));
        $this->waitOrder('whmcs-1001-create-1', 'done');
        $up = ['configoption1' => 'plesk', 'configoption2' => self::$env['ITEMS'], 'configoption3' => ''];
        foreach ([
            ['pleskreseller_SuspendAccount', self::PLESK, 'suspend-2'],
            ['pleskreseller_UnsuspendAccount', self::PLESK, 'resume-3'],
            ['pleskreseller_ChangePackage', $up, 'change-4'],
            ['pleskreseller_TerminateAccount', self::PLESK, 'terminate-5'],
        ] as [$fn, $config, $op]) {
            $this->assertSame('success', $fn($this->params($sid, $config)), $fn);
            $this->assertSame('success', $fn($this->params($sid, $config)), "{$fn} retried");
            $this->record('operation', "whmcs-{$sid}-{$op}");
            $deadline = time() + 60;
            do {
                $l = $this->central()->admin('GET', '/admin/v1/licenses/' . FakeWhmcs::$fields[$sid][Service::F_LICENSE]);
                $ops = json_encode($l->json);
                usleep(200000);
            } while (strpos($ops, "whmcs-{$sid}-{$op}") === false && time() < $deadline);
            $this->assertStringContainsString("whmcs-{$sid}-{$op}", $ops);
        }
        $this->assertSame('terminated', pleskreseller_status($this->params($sid, self::PLESK))['state']);
    }

    /** @depends testAPleskCreateOrdersOnceAndTheAgentInstallsIt */
    public function testTheCallbackReceivesOrderDoneAndMarksTheService(): void
    {
        $journal = (string) getenv('PLESKRESELLER_TEST_JOURNAL');
        $deadline = time() + 60;
        do {
            $lines = is_file($journal) ? file($journal) : [];
            $hit = preg_grep('/"UpdateClientProduct".*"serviceid":1001.*"status":"Active"/', $lines);
            usleep(200000);
        } while (!$hit && time() < $deadline);
        $this->assertNotEmpty($hit, "no order.done for service 1001 reached callback.php:\n" . implode('', $lines));
    }
}
