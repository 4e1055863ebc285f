// What one frame of empty objects costs the node that receives it (SECURITY.md, "One frame's cost").
// `npm run build && node scripts/decode-cost.js [v8|json] [MiB…] [--max-decoded-size BYTES]`
// A raw socket peer sends one MESSAGE whose V8 (or JSON) payload is a dense array of empty objects, 3 bytes each
// on the wire; the receiving node runs in a child process and reports how long its event loop was blocked, the
// CPU it spent and how much heap and RSS it gained. Without --max-decoded-size the node's default applies.
'use strict';
const { fork } = require('node:child_process');
const net = require('node:net');
const { monitorEventLoopDelay } = require('node:perf_hooks');
const { encodeFrame, Encoding, FrameType, Node, PROTOCOL_NAME, PROTOCOL_VERSION } = require('../dist');
const { jsonFrame } = require('../dist/internal');

const MiB = 1024 * 1024;

/** A V8 structured-clone payload of `size` bytes (or just under): a dense array of distinct empty objects. */
function v8Payload(size) {
  const n = Math.floor((size - 16) / 3);
  const varint = (v) => {
    const out = [];
    do {
      out.push((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
      v >>>= 7;
    } while (v > 0);
    return Buffer.from(out);
  };
  const body = Buffer.alloc(3 * n);
  for (let i = 0; i < body.length; i += 3) body.set([0x6f, 0x7b, 0x00], i); // 'o' '{' 0: an empty object
  return Buffer.concat([Buffer.from([0xff, 0x0f, 0x41]), varint(n), body, Buffer.from([0x24, 0x00]), varint(n)]);
}

/** A JSON payload of `size` bytes (or just under): `[{},{},…]`. */
function jsonPayload(size) {
  const n = Math.floor((size - 1) / 3);
  return Buffer.concat([Buffer.from('['), Buffer.from('{},'.repeat(n - 1) + '{}'), Buffer.from(']')]);
}

function frame(type, flags, id, encoding, payload) {
  return Buffer.concat(encodeFrame({ type, flags, id, encoding, payload }));
}

async function parent() {
  const args = process.argv.slice(2);
  const limitAt = args.indexOf('--max-decoded-size');
  const limit = limitAt >= 0 ? args.splice(limitAt, 2)[1] : '';
  const kind = args[0] === 'json' ? 'json' : 'v8';
  const sizes = args.slice(1).map(Number);
  for (const mib of sizes.length ? sizes : [1, 4, 32, 64]) {
    const payload = kind === 'json' ? jsonPayload(mib * MiB) : v8Payload(mib * MiB);
    const child = fork(__filename, ['child', limit], { execArgv: ['--max-old-space-size=8192'] });
    const port = await new Promise((resolve) => child.once('message', resolve));
    const socket = net.connect(port, '127.0.0.1').on('error', () => undefined).resume();
    socket.write(frame(FrameType.HANDSHAKE, 0, 1, Encoding.JSON, jsonFrame(FrameType.HANDSHAKE, 1, { protocol: PROTOCOL_NAME, version: PROTOCOL_VERSION, name: 'peer' }).payload));
    socket.write(frame(FrameType.HANDSHAKE, 0, 3, Encoding.JSON, Buffer.from('{}')));
    socket.write(frame(FrameType.MESSAGE, 0, 0, kind === 'json' ? Encoding.JSON : Encoding.V8, payload));
    const report = await new Promise((resolve) => child.once('message', resolve));
    socket.destroy();
    child.kill();
    console.log(`${kind} ${(payload.length / MiB).toFixed(1)} MiB (${Math.floor(payload.length / 3).toLocaleString('en')} objects): ${report}`);
  }
}

function child(limit) {
  const options = { heartbeatInterval: 0, handshakeTimeout: 60_000 };
  if (limit) options.maxDecodedSize = Number(limit);
  const node = new Node('server', options);
  const delay = monitorEventLoopDelay({ resolution: 1 });
  let before;
  const start = () => {
    global.gc?.();
    before = { cpu: process.cpuUsage(), mem: process.memoryUsage(), at: performance.now() };
    delay.enable();
  };
  const done = (outcome, data) => {
    const cpu = process.cpuUsage(before.cpu);
    const mem = process.memoryUsage();
    setTimeout(() => {
      delay.disable();
      const ms = (us) => (us / 1000).toFixed(0);
      process.send(
        `${outcome}; event loop blocked up to ${(delay.max / 1e6).toFixed(0)} ms, CPU ${ms(cpu.user + cpu.system)} ms, ` +
          `heap +${((mem.heapUsed - before.mem.heapUsed) / 1e6).toFixed(0)} MB, RSS ${(before.mem.rss / 1e6).toFixed(0)} → ` +
          `peak ${(process.resourceUsage().maxRSS / 1e3).toFixed(0)} MB`,
      );
      void data;
    }, 20);
  };
  node.on('connection', start);
  node.on('message', (message) => done(`decoded ${message.data.length.toLocaleString('en')} objects`, message.data));
  node.on('error', (error) => done(`refused: ${error.code}`));
  node.serve('server', 0, '127.0.0.1');
  node.once('listening', (address) => process.send(address.port));
}

if (process.argv[2] === 'child') child(process.argv[3]);
else void parent();
