package events_test

import (
	"fmt"

	"github.com/vigil-tsem/vigil/events"
)

func ExampleParse() {
	line := []byte("{\"event\": {\"context\": \"1\", \"number\": \"3\", \"process\": \"quixote\", \"type\": \"file_open\", \"ttd\": \"1095\", \"p_ttd\": \"1095\", \"task_id\": \"8b4453f1259f134be62e96853362c8e11698b01063e91527a26c8c8ecad55cfb\", \"p_task_id\": \"8b4453f1259f134be62e96853362c8e11698b01063e91527a26c8c8ecad55cfb\", \"ts\": \"1316795\"}, \"COE\": {\"uid\": \"0\", \"euid\": \"0\", \"suid\": \"0\", \"gid\": \"0\", \"egid\": \"0\", \"sgid\": \"0\", \"fsuid\": \"0\", \"fsgid\": \"0\", \"capeff\": \"0x1ffffffffff\"}, \"file_open\": {\"file\": {\"flags\": \"32800\", \"inode\": {\"uid\": \"0\", \"gid\": \"0\", \"mode\": \"0100755\", \"s_magic\": \"0xef53\", \"s_id\": \"sda3\", \"s_uuid\": \"e896110b42b24dbca89c7caa36961685\"}, \"path\": {\"dev\": {\"major\": \"8\", \"minor\": \"3\"}, \"type\": \"root\", \"pathname\": \"/usr/bin/ba\tsh\"}, \"digest\": \"59474588a312b6b6e73e5a42a59bf71e62b55416b6c9d5e4a6e1c630c2a9ecd4\"}}}")
	e, err := events.Parse(line)
	if err != nil {
		fmt.Println(err)
		return
	}
	f := e.Payload.(*events.FileEvent).File
	fmt.Printf("%s %q mode %o capeff %#x\n", e.Header.Type, f.Path.Pathname, f.Inode.Mode, e.COE.CapEff)

	_, err = events.Parse(line[:120])
	fmt.Println(err)
	// Output:
	// file_open "/usr/bin/ba\tsh" mode 100755 capeff 0x1ffffffffff
	// offset 117: malformed JSON: unterminated string
}
