/**
 * Name an error instance without assigning `name`. On a device, Moddable's
 * linker preloads the firmware and freezes the built-ins, Error.prototype
 * included; assigning a property that is read-only on the prototype throws
 * in strict code ("set name: not writable"), while defining an own property
 * on the new instance is still allowed.
 */
export function setErrorName(error: Error, name: string): void {
  Object.defineProperty(error, 'name', { value: name, writable: true, configurable: true, enumerable: false });
}
