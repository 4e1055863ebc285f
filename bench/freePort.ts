import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';

/**
 * Ports are drawn below Linux's default ephemeral range (32768–60999). A port the kernel picks for `listen(0)`
 * comes from that range, where every outgoing connection also takes its local port: a server restarted on "its"
 * port (a NATS spec kills and restarts servers) could then find it taken by some client socket meanwhile.
 */
const LOW = 20_000;
const HIGH = 32_767;

/** Whether 127.0.0.1:`port` can be listened on right now. */
async function canListen(port: number): Promise<boolean> {
  const probe = createServer();
  try {
    probe.listen(port, '127.0.0.1');
    await once(probe, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    await new Promise((resolve) => probe.close(resolve));
  }
}

/** A TCP port of 127.0.0.1 that was free a moment ago (the bench, its NATS harness and the specs share it). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW + 1));
    if (await canListen(port)) return port;
  }
  // That range is crowded: let the kernel pick one.
  const probe = createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
