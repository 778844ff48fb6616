// The API's messages and methods, compiled once from the tables generated from the .proto files.
import { TABLES } from './tables.js';
import { ProtoRegistry } from './wire.js';

export const API = new ProtoRegistry(TABLES);
