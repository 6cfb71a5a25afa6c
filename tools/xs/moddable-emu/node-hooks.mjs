// Node module hooks for tests: Moddable module names resolve to the emulations
// in named/ (the map comes from resolve.ts through register()'s data).
let urls = {};

export async function initialize(data) {
  urls = data?.urls ?? {};
}

export async function resolve(specifier, context, next) {
  // Hand the file to the next resolver (tsx), which knows how to load TypeScript.
  if (Object.prototype.hasOwnProperty.call(urls, specifier)) return next(urls[specifier], context);
  return next(specifier, context);
}
