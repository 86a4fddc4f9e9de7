/** @keel/mllm */
export {};
