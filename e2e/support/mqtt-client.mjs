// A third-party MQTT client (MQTT.js) for the Rust tests of the local stack's WebSocket
// listener: mosquitto's clients have no WebSocket support (TOOLCHAIN.md).
//
//   node e2e/support/mqtt-client.mjs '{"url":"ws://127.0.0.1:8083/mqtt","clientId":"d-1",
//     "username":"device:d-1","password":"…","origin":"http://…",
//     "publish":[{"topic":"…","message":"…","qos":1}],
//     "subscribe":["filter"],"count":1,"wait":3}'
//
// Connects once (no reconnects), subscribes, publishes in order (each QoS 1 publish waits
// for its PUBACK or the connection's end), collects messages until `count` arrived or
// `wait` seconds passed, and prints one JSON line:
//   {"connack":0|5|null,"error":"…"|null,"granted":[1,128],"puback":[true,false],
//    "closed":bool,"messages":[{"topic":"…","payload":"…"}]}
import mqtt from 'mqtt';

const args = JSON.parse(process.argv[2] ?? '{}');
const result = { connack: null, error: null, granted: [], puback: [], closed: false, messages: [] };
const done = () => {
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(0);
};
const options = {
  clientId: args.clientId,
  protocolVersion: 4,
  clean: true,
  reconnectPeriod: 0,
  connectTimeout: 5000,
};
if (args.username !== undefined) options.username = args.username;
if (args.password !== undefined) options.password = args.password;
if (args.origin !== undefined) options.wsOptions = { headers: { Origin: args.origin } };

const client = mqtt.connect(args.url, options);
const closed = new Promise((resolve) => client.once('close', () => { result.closed = true; resolve(); }));
client.on('error', (e) => {
  result.error ??= String(e.message ?? e);
  if (typeof e.code === 'number') result.connack = e.code;
});
client.on('message', (topic, payload) => result.messages.push({ topic, payload: payload.toString() }));

const connected = await Promise.race([
  new Promise((resolve) => client.once('connect', () => { result.connack = 0; resolve(true); })),
  closed.then(() => false),
]);
if (!connected) done();

const wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
for (const filter of args.subscribe ?? []) {
  const granted = await Promise.race([
    new Promise((resolve) => client.subscribe(filter, { qos: 1 }, (err, g) => resolve(err ? [128] : g.map((x) => x.qos)))),
    closed.then(() => []),
  ]);
  result.granted.push(...granted);
}
for (const p of args.publish ?? []) {
  const acked = await Promise.race([
    new Promise((resolve) => client.publish(p.topic, p.message, { qos: p.qos ?? 1 }, (err) => resolve(!err))),
    closed.then(() => false),
    wait(5000).then(() => false),
  ]);
  result.puback.push(acked);
  if (result.closed) break;
}
const deadline = Date.now() + (args.wait ?? 0) * 1000;
while (!result.closed && Date.now() < deadline && result.messages.length < (args.count ?? Infinity)) {
  await wait(20);
}
client.end(true);
done();
