// A small amqplib program the interop tests drive. Each mode prints one JSON line.
//
//   node amqp_client.js publish   URL QUEUE COUNT   # confirmed publishes
//   node amqp_client.js consume   URL QUEUE COUNT   # consume COUNT, ack each
//   node amqp_client.js roundtrip URL QUEUE COUNT   # both, on one connection
//
// The queue is declared (non-durable) by whichever side runs first.
'use strict';

const amqp = require('amqplib');

const [mode, url, queue, countText] = process.argv.slice(2);
const count = Number(countText || '10');
const TIMEOUT_MS = 20000;

function fail(message) {
  console.error(message);
  process.exit(1);
}

async function publish(connection) {
  const channel = await connection.createConfirmChannel();
  await channel.assertQueue(queue, { durable: false });
  for (let i = 0; i < count; i++) {
    channel.publish('', queue, Buffer.from(`node-${i}`), {
      contentType: 'text/plain',
      headers: { seq: i, source: 'amqplib', nested: { ok: true } },
      messageId: `m-${i}`,
      persistent: i % 2 === 0,
    });
  }
  await channel.waitForConfirms();
  await channel.close();
  return { published: count };
}

async function consume(connection) {
  const channel = await connection.createChannel();
  await channel.assertQueue(queue, { durable: false });
  await channel.prefetch(10);
  const received = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out with ${received.length}/${count} messages`)),
      TIMEOUT_MS,
    );
    channel.consume(queue, (message) => {
      if (message === null) {
        reject(new Error('consumer cancelled by the broker'));
        return;
      }
      received.push({
        body: message.content.toString(),
        headers: message.properties.headers,
        contentType: message.properties.contentType,
        messageId: message.properties.messageId,
        redelivered: message.fields.redelivered,
      });
      channel.ack(message);
      if (received.length === count) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  await channel.close();
  return { received };
}

async function main() {
  if (!['publish', 'consume', 'roundtrip'].includes(mode) || !url || !queue) {
    fail('usage: node amqp_client.js publish|consume|roundtrip URL QUEUE COUNT');
  }
  const connection = await amqp.connect(url);
  const result = { server: connection.connection.serverProperties.product };
  try {
    if (mode === 'publish' || mode === 'roundtrip') Object.assign(result, await publish(connection));
    if (mode === 'consume' || mode === 'roundtrip') Object.assign(result, await consume(connection));
  } finally {
    await connection.close();
  }
  console.log(JSON.stringify(result));
}

main().catch((error) => fail(`amqplib error: ${error && error.stack ? error.stack : error}`));
