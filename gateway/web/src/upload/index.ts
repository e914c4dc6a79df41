export { uploadFile, abortUpload, UploadError } from "./client.js";
export type { UploadFileOptions, UploadProgress, UploadResult } from "./client.js";
