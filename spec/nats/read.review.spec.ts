import { connect, type Msg } from '@nats-io/transport-node';
import { ErrorCode, type IpcError } from '../../src';
import { closeAll, delay, freezableProxy, until } from '../helpers/net';
import { describeNats, startNatsServer, type NatsServer } from '../helpers/natsServer';
import { json, natsNode, serving, within } from '../helpers/natsNodes';

/** A freezable TCP proxy to a NATS server (spec/helpers/net.ts), with its URL: the client reconnects through it. */
async function proxyTo(port: number) {
  const proxy = await freezableProxy(port);
  return { ...proxy, url: `nats://127.0.0.1:${proxy.port}` };
}

/** A white-box reading of the NATS transport: each test failed before its fix. */
describeNats('the NATS transport, read line by line', () => {
  let server: NatsServer;
  beforeAll(async () => (server = await startNatsServer()));
  afterEach(closeAll);

  it('a malformed message on a link still being opened: the open fails with ERR_IPC_CONNECT (its unheard error event crashed the process)', async () => {
    const raw = await connect({ servers: server.url });
    let held: Msg | undefined;
    raw.subscribe('ipc.discover.rude', { callback: (_e, m) => void m.respond(json({ instance: 'rude1' })) });
    raw.subscribe('ipc.open.rude1', { callback: (_e, m) => void (held ??= m) });
    await raw.flush();
    const api = natsNode('api', server.url, { maxRetries: Infinity, handshakeTimeout: 60_000 });
    void api.connectTo('rude').catch(() => undefined);
    await until(() => held !== undefined, 5000, 'the link request');
    // Anyone who sees the request (it names the client's link subject) may publish there before the answer.
    raw.publish((JSON.parse(held!.string()) as { subject: string }).subject, Buffer.from([7]));
    await raw.flush();
    await delay(100);
    held!.respond(json({ subject: 'ipc.link.rude' }));
    await until(() => api.errors.some((e) => (e as IpcError).code === ErrorCode.CONNECT && /rude1.*Malformed/.test(e.message)), 3000, 'the failed open');
    await within(api.close(), 5000);
    await raw.close();
  });

  it.each(['ipc.link.*', 'ipc.link.>', 'ipc.link.a.b', 'ipc.link. x'])('an instance answering with the link subject %p: the open fails, nothing is published there', async (subject) => {
    const raw = await connect({ servers: server.url });
    raw.subscribe('ipc.discover.rude', { callback: (_e, m) => void m.respond(json({ instance: 'rude1' })) });
    raw.subscribe('ipc.open.rude1', { callback: (_e, m) => void m.respond(json({ subject })) });
    const published: string[] = [];
    raw.subscribe('ipc.link.>', { callback: (_e, m) => void published.push(m.subject) });
    await raw.flush();
    const api = natsNode('api', server.url, { maxRetries: Infinity, handshakeTimeout: 60_000 });
    void api.connectTo('rude').catch(() => undefined);
    await until(() => api.errors.some((e) => (e as IpcError).code === ErrorCode.CONNECT && /rude1.*malformed/.test(e.message)), 5000, 'the failed open');
    await delay(100);
    // Only the client's own link subject may have seen traffic (its FIN when the refused link closed).
    expect(published.filter((s) => !s.startsWith('ipc.link.') || s.slice('ipc.link.'.length).includes('.'))).toEqual([]);
    expect(published.every((s) => s !== subject)).toBe(true);
    await within(api.close(), 5000);
    await raw.close();
  });

  it('a NATS disconnect while a link request is out: the late answer fails the open (a destroyed link was handed over, and close() hung)', async () => {
    const proxy = await proxyTo(server.port);
    const raw = await connect({ servers: server.url });
    let held: Msg | undefined;
    raw.subscribe('ipc.discover.slow', { callback: (_e, m) => void m.respond(json({ instance: 'slow1' })) });
    raw.subscribe('ipc.open.slow1', { callback: (_e, m) => void (held ??= m) });
    await raw.flush();
    const api = natsNode('api', proxy.url, { maxRetries: Infinity, handshakeTimeout: 60_000 }, { reconnectTimeWait: 50, openTimeout: 20_000 });
    void api.connectTo('slow').catch(() => undefined);
    await until(() => held !== undefined, 5000, 'the link request');
    const inbox = `${held!.reply!.slice(0, held!.reply!.lastIndexOf('.'))}.*`;
    const before = (await server.clientSubscriptions()).find((s) => s.subject === inbox)!.cid;
    proxy.drop();
    // nats.js subscribed its request inbox again on its new connection: the answer reaches the pending request.
    for (let waited = 0; !(await server.clientSubscriptions()).some((s) => s.subject === inbox && s.cid !== before); waited += 20) {
      if (waited > 5000) throw new Error('no reconnect');
      await delay(20);
    }
    held!.respond(json({ subject: 'ipc.link.late' }));
    await until(() => api.errors.some((e) => (e as IpcError).code === ErrorCode.CONNECT && /slow1/.test(e.message)), 3000, 'the failed open');
    await within(api.close(), 5000);
    await raw.close();
    await proxy.close();
  });

  it('a NATS disconnect while a write waits for confirmations: the one-way send rejects at once (it waited for requestTimeout)', async () => {
    const proxy = await proxyTo(server.port);
    const sink = await serving('sink', server.url, { maxFrameSize: 32 * 1024 * 1024 });
    let received = 0;
    sink.on('message', () => received++);
    const api = natsNode('api', proxy.url, { maxFrameSize: 32 * 1024 * 1024, requestTimeout: 60_000 }, { reconnectTimeWait: 50 });
    await api.connectTo('sink');
    proxy.freeze(); // no confirmation comes back: 9 MiB stay unconfirmed, the write waits
    const sent = api.sendTo('sink', Buffer.alloc(9 * 1024 * 1024), { receptive: false });
    const settled = sent.then(
      () => 'resolved',
      (error: IpcError) => error.code,
    );
    await delay(200);
    proxy.drop();
    expect(await within(settled, 5000)).toBe(ErrorCode.PEER_DISCONNECTED);
    expect(received).toBe(0);
    await within(api.close(), 5000);
    await proxy.close();
  });
  it('serve() then close() before NATS could be reached: no error event after close (the failed serve was reported after it)', async () => {
    for (let trial = 0; trial < 3; trial++) {
      const worker = natsNode('worker', 'nats://127.0.0.1:1');
      let closed = false;
      const late: Error[] = [];
      worker.on('close', () => (closed = true));
      worker.on('error', (error) => closed && late.push(error));
      worker.serve('worker');
      await worker.close();
      await delay(300);
      expect(late).toEqual([]);
    }
  });
});
