// `npm start`: a self-check of the framing layer until the hello/world demo arrives.
'use strict';
const { FrameDecoder, encodeFrame } = require('ipc-link-core');

const frames = ['hello', 'world!', ''].map((text, i) => ({ type: 1, flags: 0, id: i + 1, encoding: 2, payload: Buffer.from(text) }));
const bytes = Buffer.concat(frames.flatMap((f) => encodeFrame(f)));
const decoded = [];
const decoder = new FrameDecoder((f) => decoded.push(f.payload.toString()));
for (let at = 0; at < bytes.length; at += 3) decoder.push(bytes.subarray(at, at + 3));
decoder.end();
console.log(`decoded ${decoded.length} frames from 3-byte chunks:`, decoded);
if (decoded.join('|') !== 'hello|world!|') process.exit(1);
