<?php

use PHPUnit\Framework\TestCase;
use PleskReseller\Callback;
use PleskReseller\Service;
use PleskReseller\Webhook;

/** callback.php's logic with a stubbed request; one case through php's built-in server. */
final class CallbackTest extends TestCase
{
    private const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

    /** @var string */
    private $dir;

    protected function setUp(): void
    {
        FakeWhmcs::reset();
        $this->dir = sys_get_temp_dir() . '/pleskreseller-test-' . bin2hex(random_bytes(6));
        FakeWhmcs::params(42, [], [], [Service::F_STATE => 'order pending', Service::F_LAST_EVENT => '', Service::F_KN => '']);
    }

    private function handler(): Callback
    {
        return new Callback(['webhook_secret' => self::SECRET, 'state_dir' => $this->dir]);
    }

    private function signed(string $id, string $body, int $ts, string $secret = self::SECRET): array
    {
        return ['webhook-id' => $id, 'webhook-timestamp' => (string) $ts, 'webhook-signature' => Webhook::sign($secret, $id, $ts, $body)];
    }

    private function orderDone(): string
    {
        return json_encode(['id' => 'evt_7', 'type' => 'order.done', 'timestamp' => '2026-12-08T00:30:00Z',
            'data' => ['order_id' => 'whmcs-42-create-1', 'state' => 'done', 'ka_key_number' => 'PLSK.00000001.0001']]);
    }

    private function updates(): int
    {
        return count(array_filter(FakeWhmcs::$calls, function ($c) {
            return $c[0] === 'UpdateClientProduct';
        }));
    }

    public function testOrderDoneMarksTheServiceOnceAndAReplayChangesNothing(): void
    {
        $body = $this->orderDone();
        $now = time();
        [$status, $msg] = $this->handler()->handle($this->signed('evt_7', $body, $now), $body, $now);
        $this->assertSame(200, $status, $msg);
        $this->assertSame('Active', FakeWhmcs::$status[42]);
        $this->assertSame('done', FakeWhmcs::$fields[42][Service::F_STATE]);
        $this->assertSame('PLSK.00000001.0001', FakeWhmcs::$fields[42][Service::F_KN]);
        $this->assertStringContainsString('order.done', FakeWhmcs::$fields[42][Service::F_LAST_EVENT]);
        $this->assertNotEmpty(preg_grep('/service 42: order.done, status Active/', FakeWhmcs::$log));

        // The same delivery again (a retry, or a replay within 5 minutes): acknowledged, not applied.
        FakeWhmcs::$status[42] = 'Suspended';
        [$status, $msg] = $this->handler()->handle($this->signed('evt_7', $body, $now + 60), $body, $now + 60);
        $this->assertSame(200, $status);
        $this->assertStringContainsString('processed already', $msg);
        $this->assertSame(1, $this->updates());
        $this->assertSame('Suspended', FakeWhmcs::$status[42]);
    }

    public function testForgedStaleAndUnsignedWebhooksAreRefusedAndApplyNothing(): void
    {
        $body = $this->orderDone();
        $now = time();
        $forged = $this->signed('evt_8', $body, $now, 'whsec_' . base64_encode('not the secret'));
        $this->assertSame(401, $this->handler()->handle($forged, $body, $now)[0]);
        $tampered = $this->signed('evt_8', $body, $now);
        $this->assertSame(401, $this->handler()->handle($tampered, str_replace('done', 'fail', $body), $now)[0]);
        // A captured delivery replayed later than 5 minutes, under a fresh id or its own.
        $old = $this->signed('evt_9', $body, $now - 301);
        [$status, $msg] = $this->handler()->handle($old, $body, $now);
        $this->assertSame(401, $status);
        $this->assertStringContainsString('more than 5 minutes', $msg);
        $this->assertSame(401, $this->handler()->handle([], $body, $now)[0]);
        $this->assertSame(0, $this->updates());
        $this->assertArrayNotHasKey(42, FakeWhmcs::$status);
    }

    public function testAFailedUpdateIsAnswered500AndItsRetryApplied(): void
    {
        $body = $this->orderDone();
        $now = time();
        FakeWhmcs::$failUpdates = true;
        [$status, $msg] = $this->handler()->handle($this->signed('evt_10', $body, $now), $body, $now);
        $this->assertSame(500, $status);
        $this->assertStringContainsString('was not applied: UpdateClientProduct: database down', $msg);
        FakeWhmcs::$failUpdates = false;
        [$status, $msg] = $this->handler()->handle($this->signed('evt_10', $body, $now + 5), $body, $now + 5);
        $this->assertSame(200, $status, $msg);
        $this->assertSame('Active', FakeWhmcs::$status[42]);
    }

    public function testCallbackPhpOverPhpsBuiltInServer(): void
    {
        $port = $this->freePort();
        $router = $this->dir . '/router.php';
        @mkdir($this->dir, 0700, true);
        $config = $this->dir . '/config.php';
        file_put_contents($config, '<?php return ' . var_export(['webhook_secret' => self::SECRET, 'state_dir' => $this->dir], true) . ';');
        file_put_contents($router, '<?php define("PLESKRESELLER_CONFIG_FILE", ' . var_export($config, true) . ');'
            . ' require ' . var_export(__DIR__ . '/bootstrap.php', true) . ';'
            . ' FakeWhmcs::params(42, [], [], ["Central state" => ""]);'
            . ' require ' . var_export(dirname(__DIR__) . '/modules/servers/pleskreseller/callback.php', true) . ';');
        $proc = proc_open([PHP_BINARY, '-S', "127.0.0.1:{$port}", $router], [1 => ['file', '/dev/null', 'w'], 2 => ['file', '/dev/null', 'w']], $pipes);
        try {
            $body = $this->orderDone();
            $now = time();
            $good = $this->post($port, $this->signed('evt_11', $body, $now), $body);
            $forged = $this->post($port, $this->signed('evt_12', $body, $now, 'whsec_' . base64_encode('guess')), $body);
            $replay = $this->post($port, $this->signed('evt_11', $body, $now), $body);
        } finally {
            proc_terminate($proc);
            proc_close($proc);
        }
        $this->assertSame(200, $good[0], $good[1]);
        $this->assertStringContainsString('Service 42 updated from order.done', $good[1]);
        $this->assertSame(401, $forged[0], $forged[1]);
        $this->assertStringContainsString('No signature of webhook evt_12', $forged[1]);
        $this->assertSame(200, $replay[0]);
        $this->assertStringContainsString('processed already', $replay[1]);
    }

    private function freePort(): int
    {
        $s = stream_socket_server('tcp://127.0.0.1:0');
        $name = stream_socket_get_name($s, false);
        fclose($s);
        return (int) substr($name, strrpos($name, ':') + 1);
    }

    /** @return array{0:int,1:string} */
    private function post(int $port, array $headers, string $body): array
    {
        $h = [];
        foreach ($headers as $k => $v) {
            $h[] = "{$k}: {$v}";
        }
        $h[] = 'Content-Type: application/json';
        $ctx = stream_context_create(['http' => ['method' => 'POST', 'header' => implode("\r\n", $h), 'content' => $body, 'ignore_errors' => true, 'timeout' => 10]]);
        $deadline = microtime(true) + 10;
        do {
            $out = @file_get_contents("http://127.0.0.1:{$port}/callback.php", false, $ctx);
            if ($out !== false) {
                preg_match('#^HTTP/\S+ (\d+)#', $http_response_header[0], $m);
                return [(int) $m[1], $out];
            }
            usleep(100000);
        } while (microtime(true) < $deadline);
        $this->fail("php -S on port {$port} never answered");
    }
}
