// The Python worker's messages for zips of images to predict (workers/python.js serves them). They
// belong in protocol.js's MESSAGE enum; kept here until that file is free to change.
export const IMAGE_ZIP = Object.freeze({
  OPEN: 'image-zip-open', // {file} → {handle, name, paths}; rejects with the core's reason for a refused zip
  READ: 'image-zip-read', // {handle, indices} → [{blob} | {error}] in the order asked
  CLOSE: 'image-zip-close', // {handle} → null
});
