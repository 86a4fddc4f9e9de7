/** @keel/autograd */
export {};
