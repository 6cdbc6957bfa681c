//! The chain model: epoch and slot formulas, observers agreeing at an instant, heights, header
//! offsets, the pool's schedule, forks, parameter validation.

use super::*;

fn params() -> ChainParams {
    ChainParams::try_new(1_700_000_000, 2, 60, 7, 3, None).unwrap()
}

fn at(secs: i64, millis: u32) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, millis * 1_000_000).unwrap()
}

#[test]
fn epoch_and_slot_follow_the_reference_formulas() {
    let p = params();
    assert_eq!(p.abs_slot_at(at(1_699_999_999, 999)), None);
    assert_eq!(p.abs_slot_at(at(1_700_000_000, 0)), Some(0));
    assert_eq!(p.abs_slot_at(at(1_700_000_001, 999)), Some(0));
    assert_eq!(p.abs_slot_at(at(1_700_000_002, 0)), Some(1));
    // 1000 s = 500 slots = epoch 8, slot 20.
    let abs = p.abs_slot_at(at(1_700_001_000, 500)).unwrap();
    assert_eq!(p.date_of(abs), BlockDate { epoch: 8, slot: 20 });
    assert_eq!(p.date_of(abs).to_string(), "8.20");
    assert_eq!(p.abs_slot_of(BlockDate { epoch: 8, slot: 20 }), abs);
    // epoch_start = block0 + epoch·slotDuration·slotsPerEpoch.
    assert_eq!(p.epoch_start(8), at(1_700_000_000 + 8 * 120, 0));
    // slot_time(E,S) = block0 + (E·slotsPerEpoch + S)·slotDuration.
    assert_eq!(p.slot_time(abs), at(1_700_000_000 + (8 * 60 + 20) * 2, 0));
    assert_eq!(p.slot_time(abs).to_rfc3339(), "2023-11-14T22:30:00+00:00");
}

#[test]
fn two_observers_at_the_same_instant_agree() {
    let a = params();
    let b = params();
    let now = at(1_700_123_457, 250);
    assert_eq!(a.main_tip(now), b.main_tip(now));
    assert_eq!(
        a.block_hash(&a.main_tip(now)),
        b.block_hash(&b.main_tip(now))
    );
    let other_seed = ChainParams::try_new(1_700_000_000, 2, 60, 8, 3, None).unwrap();
    assert_ne!(
        a.block_hash(&a.main_tip(now)),
        other_seed.block_hash(&other_seed.main_tip(now))
    );
}

#[test]
fn height_is_the_absolute_slot_on_the_main_chain() {
    let p = params();
    let tip = p.main_tip(at(1_700_000_100, 0));
    assert_eq!(tip.height, 50);
    assert_eq!(p.block_slot(&tip), 50);
    assert_eq!(p.main_tip(at(1_600_000_000, 0)).height, 0);
}

#[test]
fn header_fields_sit_at_the_pooltool_offsets() {
    let p = params();
    let block = Block::main(500); // date 8.20
    let bytes = p.block_bytes(&block);
    let hex = to_hex(&bytes);
    let header_len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
    assert_eq!(header_len, 82 + 32 + 96 + 484);
    assert_eq!(
        bytes.len(),
        2 + header_len + p.block_content_size(&block) as usize
    );
    assert_eq!(u16::from_be_bytes([bytes[2], bytes[3]]), 2);
    assert_eq!(u32::from_str_radix(&hex[16..24], 16).unwrap(), 8);
    assert_eq!(u32::from_str_radix(&hex[24..32], 16).unwrap(), 20);
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 500);
    let parent = p.block_hash(&Block::main(499));
    assert_eq!(&hex[104..168], to_hex(&parent));
    assert_eq!(&hex[168..232], to_hex(&p.block_pool_id(&block)));
}

#[test]
fn the_pool_signs_the_blocks_of_its_schedule() {
    let p = params();
    let slot = p.pool_schedule(8)[0];
    let block = Block::main(p.abs_slot_of(BlockDate { epoch: 8, slot }));
    assert_eq!(p.block_pool_id(&block), p.pool_id());
    let hex = to_hex(&p.block_bytes(&block));
    assert_eq!(&hex[168..232], to_hex(&p.pool_id()));
}

#[test]
fn block0_has_the_short_header_and_no_parent() {
    let p = params();
    let bytes = p.block_bytes(&Block::main(0));
    assert_eq!(bytes.len(), 2 + 82);
    assert_eq!(&bytes[52..84], &[0u8; 32]);
    assert_eq!(p.block0_hash(), p.block_hash(&Block::main(0)));
}

#[test]
fn schedule_is_deterministic_distinct_and_sized() {
    let p = params();
    let first = p.pool_schedule(12);
    assert_eq!(first, p.pool_schedule(12));
    assert_eq!(first.len(), 3);
    assert!(first.windows(2).all(|w| w[0] < w[1]));
    assert!(first.iter().all(|s| *s < 60));
    let epochs: Vec<_> = (0..20).map(|e| p.pool_schedule(e)).collect();
    assert!(
        epochs.iter().any(|s| *s != first),
        "schedules should vary by epoch"
    );
    let full = ChainParams::try_new(0, 1, 10, 0, 10, None).unwrap();
    assert_eq!(full.pool_schedule(3), (0..10).collect::<Vec<_>>());
}

#[test]
fn forks_share_history_then_diverge_and_fall_behind() {
    let p = params();
    let fork = Branch::fork(7, "node-a", 100, 100);
    assert_eq!(p.tip_at_slot(&fork, 100), Block::main(100));
    assert_eq!(p.tip_at_slot(&fork, 102), Block::main(100));
    let first = p.tip_at_slot(&fork, 103);
    assert_eq!(first.height, 101);
    assert_eq!(p.parent(&first), Some(Block::main(100)));
    assert_ne!(p.block_hash(&first), p.block_hash(&Block::main(101)));
    assert_eq!(p.block_slot(&first), 103);
    let later = p.tip_at_slot(&fork, 130);
    assert_eq!(later.height, 110);
    assert!(p.tip_at_slot(&Branch::Main, 130).height > later.height);
    assert_eq!(
        p.find_block(&later, &p.block_hash(&Block::main(99)), 20),
        Some(Block::main(99))
    );
    assert_eq!(p.find_block(&later, &p.block_hash(&first), 20), Some(first));
    assert_eq!(
        p.find_block(&later, &p.block_hash(&Block::main(50)), 20),
        None
    );
    assert_ne!(Branch::fork(7, "node-b", 100, 100), fork);
}

#[test]
fn rejects_bad_parameters() {
    assert_eq!(
        ChainParams::try_new(0, 0, 60, 0, 1, None),
        Err(ChainError::Zero("slot duration"))
    );
    assert_eq!(
        ChainParams::try_new(0, 1, 0, 0, 0, None),
        Err(ChainError::Zero("slots per epoch"))
    );
    assert!(ChainParams::try_new(0, 1, 10, 0, 11, None).is_err());
    assert!(matches!(
        ChainParams::try_new(i64::MAX, 1, 10, 0, 1, None),
        Err(ChainError::OutOfRange {
            name: "block0 time",
            ..
        })
    ));
    assert!(ChainParams::try_new(-1, 1, 10, 0, 1, None).is_err());
    assert!(ChainParams::try_new(0, u64::MAX, 10, 0, 1, None).is_err());
    assert!(ChainParams::try_new(0, 1, 2_000_000, 0, 1, None).is_err());
    assert_eq!(ChainParams::default_pool_slots(60), 3);
    assert_eq!(ChainParams::default_pool_slots(10), 1);
}

#[test]
fn hex_round_trips() {
    let hash = params().block0_hash();
    assert_eq!(parse_hash(&to_hex(&hash)), Some(hash));
    assert_eq!(parse_hash(&to_hex(&hash).to_uppercase()), Some(hash));
    assert_eq!(parse_hash("zz"), None);
    assert_eq!(parse_hash(&"g".repeat(64)), None);
}

/// The daemon's PoolTool reporter reads a tip's epoch, slot, parent and pool id from these bytes.
#[test]
fn nodekeeper_decodes_the_block_bytes() {
    use nodekeeper::pooltool::wire::decode_header;
    let p = params();
    let block = Block::main(500);
    let header = decode_header(&p.block_bytes(&block)).unwrap();
    let date = p.block_date(&block);
    assert_eq!(
        (u64::from(header.epoch), u64::from(header.slot)),
        (date.epoch, date.slot)
    );
    assert_eq!(header.parent, to_hex(&p.block_hash(&Block::main(499))));
    assert_eq!(header.pool_id, to_hex(&p.block_pool_id(&block)));
    // block0 carries no leader id.
    assert_eq!(decode_header(&p.block_bytes(&Block::main(0))), None);
    // nodekeeper's own test of the decoder (`pooltool`, `decodes_the_simulators_blocks`) holds
    // these bytes: change both together.
    assert_eq!(
        to_hex(&p.block_bytes(&block)[..116]),
        "02b60002000000000000000800000014000001f4eec395f9586942eba792c813964d3461b5c297fb0256\
             df6403a0e18e847c7faed1377c11c1f18a425224d97453cd5162b0e680bd68420901afdb1985373e2ce1\
             97b4860a586d7d9bac87fb5d8f84d617c518840ee92dc7aaa5a4e5937cdb63ef"
    );
    assert_eq!(
        to_hex(&p.block_bytes(&Block::main(0))),
        "00520000000000000000000000000000000000000ae7e7ce0903612c50efcca915a911a39fea06a4b7e5\
             86b52bfc160246d758590000000000000000000000000000000000000000000000000000000000000000"
    );
}
