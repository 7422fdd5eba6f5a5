# LIST_SLOTS storage_dir
# Prints "<slot_id> <age_sec> <meta with \, CR, LF escaped>" per committed slot,
# the newest first. Creates the storage dir if missing and touches the newest
# slot (so maintenance is unlikely to remove a slot someone is about to use).
use strict;
my $storage_dir = $ARGV[0] or die("storage_dir argument required\n");
length($storage_dir) >= 3 or die("storage_dir is suspiciously short\n");
if (!-d $storage_dir) {
    system("mkdir", "-p", $storage_dir) == 0 or exit(1);
}
my @slot_infos =
    grep { !$_->{is_tmp_or_bak} }
    slot_infos($storage_dir);
if (@slot_infos) {
    my $newest_dir = $slot_infos[0]{dir};
    my $newest_age_sec = $slot_infos[0]{age_sec};
    my $newest_inode_ctime = $slot_infos[0]{inode_ctime};
    utime(time(), time(), $newest_dir) or die("utime $newest_dir: $!\n");
    foreach (@slot_infos) {
        my $meta_encoded = $_->{meta};
        $meta_encoded =~ s/\\/\\\\/g;
        $meta_encoded =~ s/\r/\\r/g;
        $meta_encoded =~ s/\n/\\n/g;
        print("$_->{slot_id} $_->{age_sec} $meta_encoded\n");
    }
    print STDERR "returned " . scalar(@slot_infos) . " slot(s) and also touched the newest slot $newest_dir (inode_ctime=$newest_inode_ctime, age_sec=$newest_age_sec)\n";
}
