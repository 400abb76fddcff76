-- Argo CD health check for rag.ragops.io/RAGService.
--
-- It reads what kstatus readers read: metadata.generation, status.observedGeneration
-- and the conditions (Ready summarises; Reconciling and Stalled are present only
-- while true), plus status.phase to tell a paused rollout from a moving one and
-- spec.rollout to say what a paused one waits for.
-- Argo CD runs custom health scripts without Lua's string library, so this one
-- uses nothing but the base and table libraries.
local hs = {}

local status = obj.status or {}
local generation = obj.metadata.generation or 0
local observed = status.observedGeneration or 0
local name = obj.metadata.name
local rollout = (obj.spec or {}).rollout or {}

local function condition(type)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

-- The current step is a pause without a duration: it waits for a promote.
local function pauseWithoutDuration()
  if rollout.steps == nil or status.currentStep == nil then
    return false
  end
  local step = rollout.steps[status.currentStep + 1]
  return step ~= nil and step.pause ~= nil and step.pause.duration == nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

local function messageOf(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

-- A spec the operator has not looked at yet says nothing about the rollout it
-- asks for, whatever the conditions of the previous generation say.
if observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation .. " (observed: " .. observed .. ")"
  return hs
end

local ready = condition("Ready")
local stalled = condition("Stalled")
local reconciling = condition("Reconciling")

if ready ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report on generation " .. generation
  return hs
end

-- Stalled: a rolled-back canary, a bad spec or a missed deadline. It needs a
-- new spec (or the retry annotation), not more waiting.
if isTrue(stalled) then
  hs.status = "Degraded"
  hs.message = messageOf(ready, messageOf(stalled, stalled.reason))
  return hs
end

if isTrue(ready) then
  hs.status = "Healthy"
  hs.message = messageOf(ready, "All replicas of the stable revision are ready")
  return hs
end

if isTrue(reconciling) then
  local msg = messageOf(ready, messageOf(reconciling, reconciling.reason))
  if reconciling.reason == "AwaitingCutover" then
    -- A declared change of embedding space: the new space runs beside the old
    -- one until the index is rebuilt; nothing moves until someone promotes.
    hs.status = "Suspended"
    hs.message = msg .. " (awaiting cutover: the canary Service is " .. name ..
      "-canary; promote with `kubectl rag promote " .. name .. "`)"
    return hs
  end
  if status.phase == "Paused" then
    -- The operator holds the rollout until someone acts.
    hs.status = "Suspended"
    if rollout.paused == true then
      hs.message = msg .. " (set spec.rollout.paused to false to continue)"
    elseif reconciling.reason == "WaitingForPromote" or pauseWithoutDuration() then
      hs.message = msg .. " (run `kubectl rag promote " .. name .. "` to continue, or `kubectl rag abort " .. name .. "`)"
    else
      hs.message = msg
    end
    return hs
  end
  hs.status = "Progressing"
  hs.message = msg
  return hs
end

-- Ready is False (or missing) with nothing in progress and nothing stalled: the
-- stable revision is short of ready pods, which its Deployment is replacing.
hs.status = "Progressing"
hs.message = messageOf(ready, "Waiting for the operator to report Ready")
return hs
