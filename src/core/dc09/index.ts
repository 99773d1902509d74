// DC-09 (ANSI/SIA DC-09) codec: frames, responses, encryption keys and alarm data blocks.
export { crc16Arc, crc16ArcHex } from "./crc16";
export {
  type AlarmForDc09,
  admCidData,
  checkDc09Account,
  Dc09DataError,
  type SiaModifierOrder,
  siaDcsData,
  swapSiaModifiers,
} from "./event-data";
export {
  DC09_MAX_FRAME_BYTES,
  DC09_MAX_REGION_BYTES,
  Dc09DecodeError,
  type Dc09DecodeOptions,
  type Dc09EncodeOptions,
  type Dc09Id,
  type Dc09Message,
  type Dc09Response,
  type Dc09ResponseFields,
  type Dc09ResponseKind,
  type DecodedDc09Frame,
  decodeDc09Frame,
  decodeDc09Response,
  type ExtendedBlock,
  encodeDc09,
  encodeDc09Response,
  nextDc09Seq,
  splitDc09Answers,
  splitDc09Frames,
} from "./frame";
export { type Dc09Key, Dc09KeyError, type Dc09KeyForm, parseDc09Key } from "./key";
export { formatDc09Time, formatDc09Timestamp, parseDc09Timestamp } from "./timestamp";
