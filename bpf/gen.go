package bpf

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type vg_hdr -type rec_file -type rec_exec -type rec_mmap -type rec_ioctl -type rec_sock_create -type rec_sock_addr -type rec_task_kill -type rec_ptrace -type rec_inode_create -type rec_inode_unlink -type rec_inode_rename -type rec_inode_setattr -type rec_sb_mount -type rec_kmod -type rec_kread -type rec_bpf -type rec_capable -type rec_fork -type rec_exit -type vg_task -type vg_ns_cfg -type vg_allow_key -type vg_loss_key lsm lsm.bpf.c -- -I./headers
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel tp tp.bpf.c -- -I./headers
