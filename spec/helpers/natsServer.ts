/**
 * Real nats-server processes for the NATS specs. The harness itself is `bench/natsServer.ts` (shared with the
 * bench, which cannot import from spec/); this adds what only jest needs: `describeNats`.
 *
 *   describeNats('my NATS feature', () => {
 *     let server: NatsServer;
 *     beforeAll(async () => (server = await startNatsServer()));
 *     it('…', async () => { const nc = await connect({ servers: server.url }); … });
 *   });   // every server started in the file is stopped after its tests (stopAllNatsServers)
 */
import { NATS_MISSING, natsAvailable, stopAllNatsServers } from '../../bench/natsServer';

export * from '../../bench/natsServer';

/** Whether `CI` is set (to anything but '', '0' or 'false'): NATS specs then fail instead of skipping. */
export function isCI(): boolean {
  const ci = process.env.CI;
  return ci !== undefined && ci !== '' && ci !== '0' && ci.toLowerCase() !== 'false';
}

/**
 * `describe` for specs that need nats-server. Installed: runs `fn`, and stops every server the file started
 * after its tests (an `afterAll` registered after `fn`'s own hooks). Missing: skips the block and prints one line
 * saying how to install it — unless `CI` is set, where the block has one failing test instead (a CI that cannot
 * run the NATS specs must not pass).
 */
export function describeNats(title: string, fn: () => void): void {
  if (natsAvailable()) {
    describe(title, () => {
      fn();
      afterAll(() => stopAllNatsServers());
    });
    return;
  }
  if (isCI()) {
    describe(title, () => {
      it('needs nats-server (CI is set, so the NATS specs may not be skipped)', () => {
        throw new Error(`CI is set but ${NATS_MISSING}; .ci/run installs it`);
      });
    });
    return;
  }
  process.stderr.write(`NATS specs skipped: ${NATS_MISSING}\n`);
  describe.skip(title, fn);
}
