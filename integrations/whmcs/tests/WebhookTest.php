<?php

use PHPUnit\Framework\TestCase;
use PleskReseller\Webhook;
use PleskReseller\WebhookError;

final class WebhookTest extends TestCase
{
    // The Standard Webhooks spec's published vector (its libraries' "sign function works" test).
    private const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    private const ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
    private const TS = 1614265330;
    private const BODY = '{"test": 2432232314}';
    private const SIG = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';

    private function headers(string $sig, int $ts = self::TS): array
    {
        return ['Webhook-Id' => self::ID, 'Webhook-Timestamp' => (string) $ts, 'Webhook-Signature' => $sig];
    }

    public function testTheSpecsVectorSignsAndVerifies(): void
    {
        $this->assertSame(self::SIG, Webhook::sign(self::SECRET, self::ID, self::TS, self::BODY));
        Webhook::verify(self::SECRET, $this->headers(self::SIG), self::BODY, self::TS + 10);
        // The prefix is optional, as in the spec's libraries.
        Webhook::verify(substr(self::SECRET, 6), $this->headers(self::SIG), self::BODY, self::TS);
        $this->addToAssertionCount(2);
    }

    public function testOneMatchingSignatureAmongSeveralIsEnough(): void
    {
        $sigs = 'v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= ' . self::SIG;
        Webhook::verify(self::SECRET, $this->headers($sigs), self::BODY, self::TS);
        $this->addToAssertionCount(1);
    }

    /** @dataProvider refused */
    public function testRefused(array $headers, string $body, int $now, string $sentence): void
    {
        try {
            Webhook::verify(self::SECRET, $headers, $body, $now);
            $this->fail('verified');
        } catch (WebhookError $e) {
            $this->assertStringContainsString($sentence, $e->getMessage());
        }
    }

    public function refused(): array
    {
        $h = $this->headers(self::SIG);
        $noId = $h;
        unset($noId['Webhook-Id']);
        return [
            'another body' => [$h, '{"test": 2432232315}', self::TS, 'No signature of webhook msg_p5jXN8AQM9LWM0D4loKWxJek'],
            'a forged signature' => [$this->headers('v1,dawfeoifkpqwoekfpqoekf'), self::BODY, self::TS, 'No signature'],
            'the right MAC as v2' => [$this->headers('v2,' . substr(self::SIG, 3)), self::BODY, self::TS, 'No signature'],
            'too old' => [$h, self::BODY, self::TS + 301, 'more than 5 minutes'],
            'too new' => [$h, self::BODY, self::TS - 301, 'more than 5 minutes'],
            'no id' => [$noId, self::BODY, self::TS, 'lacks webhook-id'],
            'a timestamp that is no number' => [array_merge($h, ['Webhook-Timestamp' => '1614265330.0']), self::BODY, self::TS, 'not unix seconds'],
        ];
    }
}
