package testkit

import "strings"

// KeySlot is the Redis Cluster hash slot of key: CRC16-XMODEM of the key, or
// of its hash tag (the first non-empty "{...}"), modulo 16384, as the
// cluster specification gives it. rueidis keeps its own copy unexported.
func KeySlot(key string) int {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if end := strings.IndexByte(key[open+1:], '}'); end > 0 {
			key = key[open+1 : open+1+end]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc & 16383)
}
