/**
 * What a Moddable device build does to the built-ins (SDK
 * documentation/xs/preload.md, "Modifying Built-in Objects Behavior"): the
 * linker preloads the modules, then freezes every built-in object, so code
 * that runs after boot cannot change them, and assigning a property a frozen
 * prototype holds read-only (`this.name = ...` in an Error subclass) throws
 * in strict code. The XS suites evaluate this script after loading the
 * firmware bundle and before running any case, so a firmware that only works
 * with mutable built-ins fails in tests, not on a device.
 *
 * globalThis itself stays extensible: the harness publishes its command
 * handler there, as the device's host does with its own globals.
 */
export const FREEZE_INTRINSICS_SOURCE = `(() => {
  const names = ['Object', 'Function', 'Array', 'Number', 'parseFloat', 'parseInt', 'Boolean', 'String', 'Symbol',
    'Date', 'Promise', 'RegExp', 'Error', 'AggregateError', 'EvalError', 'RangeError', 'ReferenceError', 'SyntaxError',
    'TypeError', 'URIError', 'JSON', 'Math', 'Reflect', 'Proxy', 'ArrayBuffer', 'SharedArrayBuffer', 'DataView',
    'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array',
    'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array', 'BigInt', 'Map', 'Set', 'WeakMap', 'WeakSet',
    'WeakRef', 'FinalizationRegistry', 'Atomics', 'isFinite', 'isNaN', 'decodeURI', 'decodeURIComponent',
    'encodeURI', 'encodeURIComponent', 'escape', 'unescape'];
  const seen = new Set();
  const freeze = (value) => {
    if ((typeof value !== 'object' && typeof value !== 'function') || value === null || value === globalThis || seen.has(value)) return;
    seen.add(value);
    Object.freeze(value);
    for (const key of Reflect.ownKeys(value)) {
      const d = Object.getOwnPropertyDescriptor(value, key);
      if (d) { freeze(d.value); freeze(d.get); freeze(d.set); }
    }
    freeze(Object.getPrototypeOf(value));
  };
  for (const name of names) if (name in globalThis) freeze(globalThis[name]);
  // Intrinsics no global names: iterator and generator prototypes.
  freeze(Object.getPrototypeOf([][Symbol.iterator]()));
  freeze(Object.getPrototypeOf(new Map()[Symbol.iterator]()));
  freeze(Object.getPrototypeOf(new Set()[Symbol.iterator]()));
  freeze(Object.getPrototypeOf(''[Symbol.iterator]()));
  freeze(Object.getPrototypeOf(function* () {}));
  freeze(Object.getPrototypeOf(async function () {}));
  return seen.size;
})()`;
