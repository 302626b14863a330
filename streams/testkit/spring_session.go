package testkit

import (
	"encoding/binary"
	"strconv"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/redis/rueidis"
)

// SpringPrincipalField is where Spring Session keeps the principal's name.
const SpringPrincipalField = "sessionAttr:org.springframework.session.FindByIndexNameSessionRepository.PRINCIPAL_NAME_INDEX_NAME"

// WriteSpringSession writes a session byte for byte as Spring Session's
// RedisIndexedSessionRepository does with its default JDK serializer: the
// hash <namespace>:sessions:<id> (creationTime and lastAccessedTime as
// java.lang.Long, maxInactiveInterval as java.lang.Integer, the principal
// as java.lang.String when not empty), living ttl plus 5 minutes, and the
// empty key <namespace>:sessions:expires:<id> living ttl. ttl 0: a session
// that never expires (maxInactiveInterval -1, no TTL).
func WriteSpringSession(t testing.TB, c rueidis.Client, namespace, id, principal string, ttl time.Duration) {
	t.Helper()
	now := time.Now().UnixMilli()
	maxInactive := int32(ttl / time.Second)
	if ttl <= 0 {
		maxInactive = -1
	}
	hash := namespace + ":sessions:" + id
	args := []string{"HSET", hash,
		"creationTime", string(JavaLong(now)),
		"lastAccessedTime", string(JavaLong(now)),
		"maxInactiveInterval", string(JavaInteger(maxInactive)),
	}
	if principal != "" {
		args = append(args, SpringPrincipalField, string(JavaString(principal)))
	}
	Do(t, c, args...)
	expires := namespace + ":sessions:expires:" + id
	Do(t, c, "APPEND", expires, "")
	if ttl > 0 {
		Do(t, c, "PEXPIRE", hash, strconv.FormatInt((ttl+5*time.Minute).Milliseconds(), 10))
		Do(t, c, "PEXPIRE", expires, strconv.FormatInt(ttl.Milliseconds(), 10))
	}
}

// javaStreamHeader starts every JDK serialization stream.
var javaStreamHeader = []byte{0xAC, 0xED, 0x00, 0x05}

// JavaString is s as ObjectOutputStream.writeObject writes a
// java.lang.String: TC_STRING and a 2-byte length of modified UTF-8, or
// TC_LONGSTRING and an 8-byte length beyond 65535 bytes.
func JavaString(s string) []byte {
	var body []byte
	for _, u := range utf16.Encode([]rune(s)) {
		switch {
		case u >= 0x01 && u < 0x80:
			body = append(body, byte(u))
		case u < 0x800: // NUL too, as C0 80
			body = append(body, 0xC0|byte(u>>6), 0x80|byte(u&0x3F))
		default:
			body = append(body, 0xE0|byte(u>>12), 0x80|byte(u>>6&0x3F), 0x80|byte(u&0x3F))
		}
	}
	out := append([]byte{}, javaStreamHeader...)
	if len(body) <= 0xFFFF {
		out = append(out, 0x74)
		out = binary.BigEndian.AppendUint16(out, uint16(len(body)))
	} else {
		out = append(out, 0x7C)
		out = binary.BigEndian.AppendUint64(out, uint64(len(body)))
	}
	return append(out, body...)
}

// JavaLong is a java.lang.Long as ObjectOutputStream writes it.
func JavaLong(v int64) []byte {
	out := javaNumber("java.lang.Long", 0x3B8BE490CC8F23DF, 'J')
	return binary.BigEndian.AppendUint64(out, uint64(v))
}

// JavaInteger is a java.lang.Integer as ObjectOutputStream writes it.
func JavaInteger(v int32) []byte {
	out := javaNumber("java.lang.Integer", 0x12E2A0A4F7818738, 'I')
	return binary.BigEndian.AppendUint32(out, uint32(v))
}

// javaNumber is the class description of a boxed number with one field
// "value" of type code typ, its superclass java.lang.Number; the value's
// bytes follow.
func javaNumber(class string, uid uint64, typ byte) []byte {
	out := append([]byte{}, javaStreamHeader...)
	out = append(out, 0x73, 0x72) // TC_OBJECT, TC_CLASSDESC
	out = javaUTF(out, class)
	out = binary.BigEndian.AppendUint64(out, uid)
	out = append(out, 0x02, 0x00, 0x01, typ) // SC_SERIALIZABLE, 1 field
	out = javaUTF(out, "value")
	out = append(out, 0x78, 0x72) // TC_ENDBLOCKDATA, superclass
	out = javaUTF(out, "java.lang.Number")
	out = binary.BigEndian.AppendUint64(out, 0x86AC951D0B94E08B)
	return append(out, 0x02, 0x00, 0x00, 0x78, 0x70) // no fields, end, no superclass
}

func javaUTF(out []byte, ascii string) []byte {
	out = binary.BigEndian.AppendUint16(out, uint16(len(ascii)))
	return append(out, ascii...)
}
