// node:test reporter: counts leaf tests per engine from their "[node]" / "[xs]"
// name prefix and writes one JSON line at the end (read by run-tests.js).
export default async function* engineCountReporter(source) {
  const counts = { node: { pass: 0, fail: 0 }, xs: { pass: 0, fail: 0 }, other: { pass: 0, fail: 0 } };
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    if (event.data.details?.type === 'suite') continue;
    const match = /^\[(node|xs)\]/.exec(event.data.name);
    const bucket = counts[match ? match[1] : 'other'];
    if (event.data.skip || event.data.todo) continue;
    bucket[event.type === 'test:pass' ? 'pass' : 'fail']++;
  }
  yield `${JSON.stringify(counts)}\n`;
}
