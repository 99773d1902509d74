// The data-map: turns a parsed alarm email into an AlarmEvent by rules edited in the Node-RED editor.
// No Node-RED here; the data-map node adapter wraps compileDataMap().
export { type CompiledDataMap, compileDataMap, DataMapConfigError, dataMapConfigProblems } from "./compile";
export { DEVICE_PRESETS, type DeviceEmailView, type DevicePreset, detectDevicePresets } from "./device-presets";
export { DEFAULT_PREPROCESS, type PreparedEmail } from "./preprocess";
export {
  cameraPreset,
  classicOneLinePreset,
  DATA_MAP_PRESETS,
  type DataMapPreset,
  defaultDataMapConfig,
  temperatureLoggerPreset,
} from "./presets";
export { defaultTranslationTables } from "./tables";
export { type TryItResult, tryDataMap, tryDataMapOnRawEmail } from "./try-it";
export * from "./types";
export { DEFAULT_RANGES } from "./validate";
