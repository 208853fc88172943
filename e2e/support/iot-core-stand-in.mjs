// A stand-in for AWS IoT Core's MQTT-over-WebSocket endpoint inside the browser, through
// playwright's `page.routeWebSocket`: the page's WebSockets to the endpoint never leave
// the browser, and this answers them as a broker would (MQTT 3.1.1: CONNACK, SUBACK,
// PUBACK, PINGRESP), recording what the page sent: each connection's presigned URL, its
// CONNECT (client id, user name) and its subscriptions, and every PUBLISH. `command()`
// sends a message to the connections subscribed to a topic, as the remediation Lambda's
// publish would arrive.
//
// Like IoT Core, it refuses a URL whose X-Amz-Date is more than 5 minutes from its own
// clock (this process's, which is not the page's when a test moves the page's clock): the
// upgrade fails, so the page sees its socket close before it opens, with no status, as a
// browser shows IoT Core's HTTP 403. Those URLs are in `refused`.

/** MQTT's remaining length: [value, bytes used], or null if incomplete. */
function remainingLength(buf, at) {
  let value = 0;
  for (let i = 0; i < 4; i++) {
    if (at + i >= buf.length) return null;
    const b = buf[at + i];
    value |= (b & 0x7f) << (7 * i);
    if (b < 0x80) return [value, i + 1];
  }
  throw new Error('malformed remaining length');
}

function encodeLength(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

const str = (body, at) => {
  const len = body.readUInt16BE(at);
  return [body.subarray(at + 2, at + 2 + len).toString('utf8'), at + 2 + len];
};

const utf8 = (s) => {
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
};

/** Whether an MQTT topic filter matches a topic name (`+` and `#`). */
export function matches(filter, topic) {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

/** SigV4's limit: a signature more than 5 minutes from the server's time is refused. */
export const MAX_SKEW_MS = 5 * 60 * 1000;

/** X-Amz-Date (`20130524T000000Z`) of a presigned URL, as ms since the epoch; NaN if none. */
export function amzDateOf(url) {
  const d = new URL(url.replace(/^wss?:/, 'https:')).searchParams.get('X-Amz-Date') ?? '';
  const m = d.match(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/);
  return m ? Date.UTC(m[1], m[2] - 1, m[3], m[4], m[5], m[6]) : NaN;
}

/**
 * Routes the page's WebSockets whose URL matches `url` (a RegExp) to the stand-in. Returns
 * `{ connections, refused, publishes, command(topic, payload) }`; each connection is
 * `{ url, at, clientId, username, filters }` (`at`: this process's time when it came), each
 * refused URL `{ url, at }`, each publish `{ clientId, topic, payload }`.
 */
export async function standInIotCore(page, url) {
  const connections = [];
  const refused = [];
  const publishes = [];
  await page.routeWebSocket(url, (ws) => {
    const at = Date.now();
    if (!(Math.abs(amzDateOf(ws.url()) - at) <= MAX_SKEW_MS)) {
      refused.push({ url: ws.url(), at });
      // Closed before it opened: what a refused upgrade looks like to the page.
      ws.close({ code: 1006 }).catch(() => {});
      return;
    }
    const conn = { url: ws.url(), at, clientId: null, username: null, filters: [], ws };
    connections.push(conn);
    let buf = Buffer.alloc(0);
    const send = (bytes) => ws.send(Buffer.from(bytes));
    ws.onMessage((message) => {
      buf = Buffer.concat([buf, typeof message === 'string' ? Buffer.from(message) : message]);
      for (;;) {
        const len = remainingLength(buf, 1);
        if (!len || buf.length < 1 + len[1] + len[0]) return;
        const type = buf[0] >> 4;
        const flags = buf[0] & 0x0f;
        const body = buf.subarray(1 + len[1], 1 + len[1] + len[0]);
        buf = buf.subarray(1 + len[1] + len[0]);
        if (type === 1) { // CONNECT
          let at = str(body, 0)[1] + 1; // protocol name, level
          const connectFlags = body[at];
          at += 3; // flags, keep-alive
          [conn.clientId, at] = str(body, at);
          if (connectFlags & 0x04) at = str(body, str(body, at)[1])[1]; // will
          if (connectFlags & 0x80) [conn.username] = str(body, at);
          send([0x20, 0x02, 0x00, 0x00]);
        } else if (type === 8) { // SUBSCRIBE
          const pid = body.readUInt16BE(0);
          const granted = [];
          for (let at = 2; at < body.length;) {
            let filter;
            [filter, at] = str(body, at);
            conn.filters.push(filter);
            granted.push(Math.min(body[at], 1));
            at += 1;
          }
          send([0x90, ...encodeLength(2 + granted.length), pid >> 8, pid & 0xff, ...granted]);
        } else if (type === 3) { // PUBLISH
          const qos = (flags >> 1) & 3;
          const [topic, at] = str(body, 0);
          const payloadAt = qos > 0 ? at + 2 : at;
          publishes.push({ clientId: conn.clientId, topic,
            payload: body.subarray(payloadAt).toString('utf8') });
          if (qos > 0) send([0x40, 0x02, body[at], body[at + 1]]);
        } else if (type === 12) { // PINGREQ
          send([0xd0, 0x00]);
        }
      }
    });
  });
  return {
    connections,
    refused,
    publishes,
    /** Publishes `payload` (QoS 0) to every connection subscribed to `topic`. */
    command(topic, payload) {
      const rest = Buffer.concat([utf8(topic), Buffer.from(payload, 'utf8')]);
      const packet = Buffer.concat([Buffer.from([0x30, ...encodeLength(rest.length)]), rest]);
      let sent = 0;
      for (const c of connections) {
        if (c.filters.some((f) => matches(f, topic))) {
          c.ws.send(packet);
          sent++;
        }
      }
      return sent;
    },
  };
}
