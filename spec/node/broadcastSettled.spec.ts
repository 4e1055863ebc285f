import { createLinkPair, ErrorCode, type BroadcastOutcome } from '../../src';
import { closeAll, node, until } from '../helpers/net';

afterEach(closeAll);

/** A hub with three peers connected to it: 'fast' and 'slow' answer, 'frozen' never does. */
async function hubWithPeers() {
  const hub = node('hub');
  for (const name of ['fast', 'frozen', 'slow']) {
    const peer = node(name);
    if (name === 'fast') peer.on('message', (m) => m.reply(`${name}: ${m.data}`));
    if (name === 'slow') peer.on('message', (m) => setTimeout(() => m.reply(`${name}: ${m.data}`), 20));
    const [a, b] = createLinkPair();
    hub.acceptVia(a);
    await peer.connectVia('hub', b);
  }
  await until(() => hub.stats().peers['server:slow'] !== undefined);
  return hub;
}

describe('broadcastSettled', () => {
  it('one peer never answers: the two other replies are there, the frozen one times out', async () => {
    const hub = await hubWithPeers();
    const outcomes = await hub.broadcastSettled<string>('status?', { timeout: 300 });
    const byName = Object.fromEntries(outcomes.map((o) => [o.name, o]));
    expect(outcomes.map((o) => o.name).sort()).toEqual(['fast', 'frozen', 'slow']);
    expect(byName.fast).toEqual({ name: 'fast', status: 'fulfilled', value: 'fast: status?' });
    expect(byName.slow).toEqual({ name: 'slow', status: 'fulfilled', value: 'slow: status?' });
    expect(byName.frozen).toMatchObject({ name: 'frozen', status: 'rejected', reason: { code: ErrorCode.TIMEOUT } });
    // The all-or-nothing form loses them all.
    await expect(hub.broadcast('status?', { timeout: 300 })).rejects.toMatchObject({ code: ErrorCode.TIMEOUT });
  });

  it('honours filter; only bad options or an unencodable value reject the whole call', async () => {
    const hub = await hubWithPeers();
    const outcomes: BroadcastOutcome[] = await hub.broadcastSettled('x', { filter: /^(fast|slow)$/, timeout: 1000 });
    expect(outcomes.map((o) => [o.name, o.status]).sort()).toEqual([
      ['fast', 'fulfilled'],
      ['slow', 'fulfilled'],
    ]);
    await expect(hub.broadcastSettled(() => 'functions cannot be encoded')).rejects.toMatchObject({ code: ErrorCode.ENCODE });
    await expect(hub.broadcastSettled('x', { filter: 'fast' as never })).rejects.toThrow(/broadcastSettled\(data, options\): options\.filter must be a RegExp/);
  });
});
