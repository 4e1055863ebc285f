// Small findings of the last reviews that need a real nats-server (see spec/node/polish.review.spec.ts).
import { ErrorCode } from '../../src';
import { closeAll, delay } from '../helpers/net';
import { describeNats, startNatsServer, type NatsServer } from '../helpers/natsServer';
import { natsNode } from '../helpers/natsNodes';

describeNats('ERR_IPC_NOT_CONNECTED over NATS', () => {
  let server: NatsServer;
  beforeAll(async () => (server = await startNatsServer()));
  afterAll(() => server?.stop());
  afterEach(closeAll);

  it('sending while connectTo still searches says what to do, as over TCP (it said only "is not connected")', async () => {
    const api = natsNode('api', server.url, { maxRetries: Infinity, retryTime: 20 });
    const connecting = api.connectTo('absent').catch((e: Error) => e);
    await delay(50);
    await expect(api.sendTo('absent', 'hi')).rejects.toMatchObject({
      code: ErrorCode.NOT_CONNECTED,
      message: 'Node "api" is not connected to "absent": its connection is not up (connecting or reconnecting: await connectTo before sending)',
    });
    await api.close();
    await connecting;
  });
});
