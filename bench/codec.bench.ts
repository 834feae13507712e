/** Avro (with and without the bench's sessionSchema) vs JSON size of the same session and of one write's change. */
import { commandFor, log } from './lib/context.js';
import { round } from './lib/stats.js';
import { benchSessionSchema, sessionFor } from './session.js';

export default async function codec(): Promise<Record<string, unknown>> {
  log('codec: Avro vs JSON');
  const { createSessionCodec } = await import('../src/codec/index.js');
  const session = { ...sessionFor(42), views: 17, lastSeen: Date.now() };
  const change = { views: session.views, lastSeen: session.lastSeen };
  const plain = createSessionCodec({ types: [], maxSessionBytes: 1 << 20 });
  const schema = createSessionCodec({ types: [], maxSessionBytes: 1 << 20, sessionSchema: benchSessionSchema });
  const json = Buffer.byteLength(JSON.stringify(session));
  const jsonChange = Buffer.byteLength(JSON.stringify(change));
  const result = {
    command: commandFor('codec'),
    session: 'bench/session.ts sessionFor(42) after 17 writes',
    jsonBytes: json,
    avroBytes: plain.encodeSession(session).length,
    avroSchemaBytes: schema.encodeSession(session).length,
    changeJsonBytes: jsonChange,
    changeAvroBytes: plain.encodeEntries(change).length,
    changeAvroSchemaBytes: schema.encodeEntries(change).length,
  };
  log(`  JSON ${json} B, Avro ${result.avroBytes} B, Avro with sessionSchema ${result.avroSchemaBytes} B`);
  return {
    ...result,
    avroVsJson: round(result.avroBytes / json, 3),
    avroSchemaVsJson: round(result.avroSchemaBytes / json, 3),
  };
}
